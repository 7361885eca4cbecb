"""E-mail notices: both parts say what was exceeded, when, against what; what follows; how to
announce high traffic."""

from __future__ import annotations

from email.message import EmailMessage

from fairuse.notify.mail import compose
from fairuse.records import Enforcement, Violation

DAY = 86_400_000
T0 = 1_793_577_600_000  # 2026-11-02T00:00:00Z
STRIKE = Violation("v1", "acme", "audio_hours", "2026-10", "exceeded", 190.5, 176.0, "hours", 1,
                   "2021-01-12", T0)  # fmt: skip
NOTICE = Enforcement("n1", "acme", "notice", "throttle", T0, T0 + 14 * DAY, ("v0", "v1"))
PRIOR = "Announce high traffic at https://portal.example/notices."


def _parts(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    return plain.get_content(), html.get_content()


def test_the_advance_notice_names_the_excess_the_action_and_its_start() -> None:
    message = compose(NOTICE.to_dict(), "enforcement.notice", sender="f@x.example",
                      recipient="ops@acme.example", prior_notice=PRIOR,
                      cited={"v1": STRIKE.to_dict()}, record_id="n1")  # fmt: skip
    assert message["Subject"] == "Advance notice: throttle for acme from 2026-11-16 00:00 UTC"
    for text in _parts(message):
        assert "electronic advance notice" in text
        assert "audio recording hours in 2026-10: 190.5 hours observed" in text
        assert "limit of 176 hours" in text
        assert "2026-11-02 00:00 UTC" in text  # when
        assert "on or after 2026-11-16 00:00 UTC, the service is throttled down" in text
        assert "1 more exceeded period(s) (violation ids v0)" in text  # not seen by the notifier
        assert "https://portal.example/notices" in text


def test_an_exceeded_violation_and_an_action_read_as_such() -> None:
    violation = compose(
        STRIKE.to_dict(), "violation.exceeded", sender="f@x.example", recipient="a@b.example",
        prior_notice=PRIOR, cited={}, record_id="v1",
    )  # fmt: skip
    plain, html = _parts(violation)
    assert "exceeded its Fair Usage Policy limit" in plain and "counts as a strike" in plain
    assert "&" not in plain and "<p>" in html
    action = Enforcement("a1", "acme", "action", "charge", T0 + 20 * DAY, T0 + 20 * DAY, ("v1",))
    message = compose(action.to_dict(), "enforcement.action", sender="f@x.example",
                      recipient="a@b.example", prior_notice=PRIOR,
                      cited={"v1": STRIKE.to_dict()}, record_id="a1")  # fmt: skip
    assert "from 2026-11-22 00:00 UTC, charges apply to the excess usage" in _parts(message)[0]


def test_strikes_and_the_end_of_a_throttle_come_from_the_record_when_it_carries_them() -> None:
    action = {
        **Enforcement("a1", "acme", "action", "throttle", T0, T0, ("v9",)).to_dict(),
        "until": T0 + 7 * DAY,
        "metrics": [
            {"metric": "video_hours", "period": "2026-11", "observed": 120.25, "limit": 110.0,
             "unit": "hours", "excess": 10.25, "seats": 2, "ts": T0},
        ],
    }  # fmt: skip
    message = compose(action, "enforcement.action", sender="f@x.example", recipient="a@b.example",
                      prior_notice=PRIOR, cited={}, record_id="a1")  # fmt: skip
    plain = _parts(message)[0]
    assert "video recording hours in 2026-11: 120.25 hours observed against a limit of 110" in plain
    assert "until 2026-11-09 00:00 UTC, the service is throttled down" in plain
    assert "v9" not in plain
