"""Issue 9's custom-policy cases stream as they replay: one worker, one policy file.

The cases of ``tests/unit/replay/test_issue9_cases.py`` that need a policy other than the default
(a revision lowering audio from April, per-user allowance, one strike per incident under tight
limits, ``throttle_days``, flat channel weighting) and the averaged seats, one tenant each: the
tenant overrides of one policy file give every case its own settings, so one worker run covers
them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from stream_harness import assert_exactly_as_replay, caught_up, produce, replay, wait_for

from fairuse.policy import SETTING_FIELDS, Limits, load_policy, parse_instant
from fairuse.settings import KafkaSettings

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
ONE_HOUR_A_MONTH = {"audio_hours_per_day": 1, "video_hours_per_day": 1, "working_days_per_month": 1}
OVERRIDES: dict[str, dict[str, Any]] = {
    "case7a-strike": ONE_HOUR_A_MONTH,
    "per-user": {**ONE_HOUR_A_MONTH, "allowance": "per_user"},
    "throttle-week": {"throttle_days": 7},
    "flat": {"channel_weighting": "flat"},
}


def at(text: str) -> int:
    """Epoch ms of a UTC ``YYYY-MM-DDTHH:MM``."""
    return parse_instant(text + ":00+00:00")


def _revision(revision_id: str, effective_from: str, limits: Limits, tenants: bool) -> str:
    """One ``[[revision]]`` stating every setting, with the case tenants' overrides."""
    lines = ["[[revision]]", f'id = "{revision_id}"', f"effective_from = {effective_from}"]
    lines += [f"{name} = {orjson.dumps(getattr(limits, name)).decode()}" for name in SETTING_FIELDS]
    for tenant, values in OVERRIDES.items() if tenants else ():
        lines.append(f'[revision.tenants."{tenant}"]')
        lines += [f"{name} = {orjson.dumps(value).decode()}" for name, value in values.items()]
    return "\n".join(lines) + "\n\n"


class Tenant:
    """Events of one tenant with generated ids."""

    def __init__(self, tenant: str, payloads: list[bytes]) -> None:
        self.tenant = tenant
        self.payloads = payloads
        self.count = 0

    def add(self, kind: str, ts: int | str, **fields: Any) -> None:
        self.count += 1
        event = {
            "type": kind,
            "event_id": f"{self.tenant}-{self.count}",
            "tenant_id": self.tenant,
            "ts": at(ts) if isinstance(ts, str) else ts,
            **fields,
        }
        self.payloads.append(orjson.dumps(event))

    def record(self, user: str, media: str, start: int, end: int, every: int = 10 * MINUTE) -> None:
        """A session of ``user`` from ``start`` to ``end`` with a heartbeat every ``every`` ms."""
        sid = f"s{self.count}"
        self.add("session_started", start, session_id=sid, user_id=user, media=media)
        for ts in range(start + every, end, every):
            self.add("session_heartbeat", ts, session_id=sid)
        self.add("session_stopped", end, session_id=sid)

    def days_of_recording(self, user: str, hours: float, first_day: str) -> None:
        """``hours`` of audio by ``user`` in ten-hour days from 08:00 of ``first_day`` on."""
        day = at(first_day + "T08:00")
        left = int(hours * HOUR)
        while left > 0:
            span = min(10 * HOUR, left)
            self.record(user, "audio", day, day + span)
            left -= span
            day += DAY


def _events() -> list[bytes]:
    payloads: list[bytes] = []
    # Case 2: one session across March 31 -> April 1; April's lower audio limit never judges March.
    case2 = Tenant("case2-revision", payloads)
    case2.record("u1", "audio", at("2026-03-01T00:00"), at("2026-04-02T00:00"), every=9 * MINUTE)
    # Case 3a: two users record 300 h; deactivating one at 17:00 on March 31 flags nothing.
    case3a = Tenant("case3a-seats", payloads)
    for user in ("u1", "u2"):
        case3a.add("user_activated", "2026-03-01T00:00", user_id=user)
        case3a.days_of_recording(user, 150, "2026-03-02")
    case3a.add("user_deactivated", "2026-03-31T17:00", user_id="u2")
    # Case 3b: activating an idle user on March 30 hides no excess (200 h against 176 h).
    case3b = Tenant("case3b-seats", payloads)
    case3b.add("user_activated", "2026-03-01T00:00", user_id="u1")
    case3b.days_of_recording("u1", 200, "2026-03-02")
    case3b.add("user_activated", "2026-03-30T00:00", user_id="idle")
    # Case 7a: one deactivation pushes audio and video over (1 h x 1 day per seat): one strike.
    case7a = Tenant("case7a-strike", payloads)
    for user in ("u1", "u2"):
        case7a.add("user_activated", "2026-03-02T08:00", user_id=user)
    for media in ("audio", "video"):
        case7a.record("u1", media, at("2026-03-02T08:00"), at("2026-03-02T09:30"))
    case7a.add("user_deactivated", "2026-03-02T09:30", user_id="u2")
    case7a.add("user_activated", "2026-03-04T09:30", user_id="u3")
    # Per-user allowance: u1's own 70 minutes exceed 1 h; the pooled 80 minutes would not.
    per_user = Tenant("per-user", payloads)
    for user in ("u1", "u2"):
        per_user.add("user_activated", "2026-03-02T08:00", user_id=user)
    per_user.record("u1", "audio", at("2026-03-02T09:00"), at("2026-03-02T10:10"))
    per_user.record("u2", "audio", at("2026-03-02T09:00"), at("2026-03-02T09:10"))
    # throttle_days = 7: the throttle action lasts a week from its start.
    week = Tenant("throttle-week", payloads)
    for day in ("2026-03-02", "2026-03-03", "2026-03-18"):
        week.add("api_call", f"{day}T10:00", count=2401)
    # Flat channel weighting: ten minutes of stereo count ten minutes.
    flat = Tenant("flat", payloads)
    stereo = {"session_id": "s", "user_id": "u", "media": "audio", "channels": 2}
    flat.add("session_started", "2026-03-02T09:00", **stereo)
    flat.add("session_stopped", "2026-03-02T09:10", session_id="s")
    return payloads


def _of(records: list[dict[str, Any]], tenant: str, **match: Any) -> list[dict[str, Any]]:
    return [
        r
        for r in records
        if r["tenant_id"] == tenant and all(r.get(k) == v for k, v in match.items())
    ]


def _check_cases(expected: dict[str, list]) -> None:
    """The replay shows each case's behaviour, so the parity below compares something."""
    violations, enforcement = expected["violations"], expected["enforcement"]
    march = _of(violations, "case2-revision", period="2026-03")
    assert march and {(v["policy_revision"], v["limit"]) for v in march} == {("2021-01-12", 176)}
    assert not _of(violations, "case2-revision", period="2026-04")
    assert not _of(violations, "case3a-seats", status="exceeded")
    [excess] = _of(violations, "case3b-seats", status="exceeded")
    assert 1 <= excess["seats"] < 1.1
    strikes = _of(violations, "case7a-strike", status="exceeded")
    assert sorted(v["metric"] for v in strikes) == ["audio_hours", "video_hours"]
    assert not _of(enforcement, "case7a-strike")
    found = [(v["status"], v["user_id"]) for v in _of(violations, "per-user")]
    assert found == [("warning", "u1"), ("exceeded", "u1")]
    [action] = _of(enforcement, "throttle-week", kind="action")
    assert action["until"] == at("2026-03-25T10:00")
    assert {u["weighted_ms"] for u in _of(expected["usage"], "flat")} == {10 * MINUTE}


def test_custom_policy_cases_stream_as_they_replay(
    kafka_settings: KafkaSettings, workers, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        _revision("2021-01-12", "2021-01-12T00:00:00Z", Limits(), tenants=True)
        + _revision("2026-04-01", "2026-04-01T00:00:00Z", Limits(audio_hours_per_day=4), False)
    )
    assert load_policy(policy).limits_at("flat", at("2026-05-01T00:00"))[1].channel_weighting == (
        "flat"
    )  # the overrides carry into the April revision
    payloads = _events()
    events = tmp_path / "events.ndjson"
    events.write_bytes(b"\n".join(payloads) + b"\n")
    expected = replay(events, tmp_path, policy)
    _check_cases(expected)

    produce(kafka_settings, payloads)
    worker = workers().start("--policy", str(policy))
    wait_for(
        lambda: caught_up(kafka_settings, worker.app_id) or not worker.alive(),
        240,
        "the worker to commit every event",
    )
    assert worker.alive(), worker.log_tail()
    assert_exactly_as_replay(kafka_settings, expected)
