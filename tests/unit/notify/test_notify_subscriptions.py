"""The subscriptions file: parsing, matching by tenant and kind, reloading without a restart."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson
import pytest

from fairuse.errors import ConfigError
from fairuse.ledger import Ledger
from fairuse.notify.kinds import identify, kind_matches
from fairuse.notify.subscriptions import SubscriptionFile, Target, parse_subscriptions
from fairuse.policy import DEFAULT_POLICY
from fairuse.records import Adjustment, Enforcement, Statement, Violation
from fairuse.settings import NotifySettings

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

GOOD = f"""
[[subscription]]
name = "acme-ops"
tenant = "acme"
kinds = ["violation.exceeded", "enforcement"]
webhook = {{ url = "https://hooks.acme.example/fairuse", secret = "{SECRET}" }}
email = ["ops@acme.example"]

[[subscription]]
name = "billing"
tenant = "*"
kinds = ["enforcement.action"]
email = "billing@numonix.example"
"""


def test_targets_follow_tenant_and_kind() -> None:
    subs = parse_subscriptions(GOOD)
    hook = Target("acme-ops", "webhook", "https://hooks.acme.example/fairuse")
    ops = Target("acme-ops", "email", "ops@acme.example")
    billing = Target("billing", "email", "billing@numonix.example")
    assert subs.targets_for("acme", "violation.exceeded") == [hook, ops]
    assert subs.targets_for("acme", "violation.warning") == []
    assert subs.targets_for("acme", "enforcement.action") == [hook, ops, billing]
    assert subs.targets_for("other", "enforcement.action") == [billing]
    assert subs.targets_for("other", "enforcement.notice") == []
    assert subs.webhook_key("acme-ops", hook.address) is not None
    assert subs.webhook_key("billing", hook.address) is None


def test_kinds_come_from_the_records_own_fields_whatever_the_topic() -> None:
    violation = Violation("v1", "acme", "api_calls", "2026-11-02", "exceeded", 2500, 2400,
                          "calls", 3, "r1", 5)  # fmt: skip
    notice = Enforcement("n1", "acme", "notice", "throttle", 7, 9, ("v1",))
    assert identify(violation.to_dict()).kind == "violation.exceeded"  # type: ignore[union-attr]
    assert identify(notice.to_dict()).kind == "enforcement.notice"  # type: ignore[union-attr]
    statement = {"statement_id": "s1", "tenant_id": "acme", "ts": 3}
    adjustment = {"adjustment_id": "a1", "statement_id": "s1", "tenant_id": "acme"}
    assert identify(statement).kind == "statement"  # type: ignore[union-attr]
    assert identify(adjustment).kind == "adjustment"  # type: ignore[union-attr]
    assert identify({"tenant_id": "acme"}) is None
    assert identify({"violation_id": "v", "tenant_id": "a", "status": "odd"}) is None
    assert kind_matches("*", "statement") and kind_matches("violation", "violation.warning")
    assert not kind_matches("violation.exceeded", "violation.warning")
    assert not kind_matches("violation", "violations.x")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[subscription]]\ntenant = 'a'\nemail = 'a@b.example'", "'name'"),
        ("[[subscription]]\nname = 'x'\nemail = 'a@b.example'", "'tenant'"),
        ("[[subscription]]\nname = 'x'\ntenant = 'a'", "needs a 'webhook' or an 'email'"),
        ("[[subscription]]\nname = 'x'\ntenant = 'a'\nkinds = ['violations']\nemail = 'a@b.c'",
         "unknown kind 'violations'"),
        ("[[subscription]]\nname = 'x'\ntenant = 'a'\nemail = 'not-an-address'",
         "not an e-mail address"),
        ("[[subscription]]\nname = 'x'\ntenant = 'a'\n"
         "webhook = { url = 'ftp://h/x', secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }",
         "http(s) URL"),
        ("[[subscription]]\nname = 'x'\ntenant = 'a'\n"
         "webhook = { url = 'http://h/x', secret = 'plain' }", "whsec_"),
        ("[[subscription]]\nname = 'x'\ntenant = 'a'\nemail = 'a@b.c'\n"
         "[[subscription]]\nname = 'x'\ntenant = 'b'\nemail = 'a@b.c'", "duplicate"),
        ("[[subscription]]\nname = 'x'\ntenant = 'a'\nemails = 'a@b.c'", "unknown key(s) emails"),
        ("[[subscription]\n", "subs.toml"),
    ],
)  # fmt: skip
def test_bad_files_are_refused_with_a_precise_reason(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        parse_subscriptions(text, "subs.toml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("subs.toml")


def _touch(path: Path, text: str, bump_s: int) -> None:
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump_s * 1_000_000_000))


def test_a_changed_file_is_reloaded_and_a_bad_one_keeps_the_last_good(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "subs.toml"
    path.write_text(GOOD)
    subs = SubscriptionFile(path)
    assert not subs.refresh()  # unchanged
    _touch(path, GOOD.replace('tenant = "acme"', 'tenant = "zeta"'), 1)
    assert subs.refresh()
    assert subs.current.targets_for("zeta", "violation.exceeded")
    with caplog.at_level(logging.ERROR):
        _touch(path, "[[subscription]]\nname = 1\n", 2)
        assert not subs.refresh()
        assert not subs.refresh()  # the same bad file: one error, not one per check
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "keeping the last good version" in errors[0].getMessage()
    assert subs.error and subs.current.targets_for("zeta", "violation.exceeded")
    _touch(path, GOOD, 3)
    assert subs.refresh() and subs.error is None


def test_a_missing_file_at_start_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read subscriptions file"):
        SubscriptionFile(tmp_path / "nope.toml")


def test_statements_and_adjustments_of_the_ledger_are_routed_by_their_kind() -> None:
    """The notifier reads fairuse.statements by default; a subscriber to ``statement`` gets the
    core's statements (timed by ``closed_at``), one to ``adjustment`` its adjustments."""
    ledger, records = Ledger(DEFAULT_POLICY), []
    for event in (
        {"type": "api_call", "event_id": "e1", "tenant_id": "acme", "ts": 1_772_704_800_000},
        {"type": "api_call", "event_id": "e2", "tenant_id": "acme", "ts": 1_772_928_000_000},
        {"type": "api_call", "event_id": "e3", "tenant_id": "acme", "ts": 1_772_704_800_001},
    ):  # 03-05 10:00, 03-08 00:00 (closes 03-05), a late call of 03-05
        records += ledger.process(orjson.dumps(event), "t")
    statement = next(r for r in records if isinstance(r, Statement))
    adjustment = next(r for r in records if isinstance(r, Adjustment))
    refs = [identify(orjson.loads(r.to_json())) for r in (statement, adjustment)]
    assert [(r.kind, r.record_id, r.ts) for r in refs if r is not None] == [
        ("statement", statement.statement_id, statement.closed_at),
        ("adjustment", adjustment.adjustment_id, adjustment.at),
    ]
    assert "statements" in NotifySettings().topics
    subs = parse_subscriptions(
        '[[subscription]]\nname = "billing"\ntenant = "*"\nkinds = ["statement"]\n'
        'email = ["billing@acme.example"]\n'
    )
    assert [t.address for t in subs.targets_for("acme", "statement")] == ["billing@acme.example"]
    assert subs.targets_for("acme", "adjustment") == []
