"""Hypothesis properties of issue 9 (policy fidelity): no phantom time, no retroactive revision,
notices never already due, one strike per tenant per local day."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_support import DAY, HOUR, MINUTE, ms
from test_ledger_properties import tenant_history

from fairuse.ledger import Ledger
from fairuse.ledger.calendar import calendar_for
from fairuse.policy import Limits, Policy, Revision
from fairuse.records import Enforcement, UsageAccrual, Violation

TIGHT = {
    "audio_hours_per_day": 0.5,
    "video_hours_per_day": 0.5,
    "working_days_per_month": 1,
    "api_calls_per_day": 1000,
    "stored_calls_per_user": 2.0,
    "repeat_threshold": 2,
    "notice_period_days": 1,
    "repeat_window_days": 3,
    "session_expiry_s": 2 * 3600,
}


def revisions(draw_starts: list[int]) -> Policy:
    """Revisions at the given instants, each with its own tight limits."""
    return Policy(
        [Revision("r0", ms("2021-01-12T00:00"), Limits(**TIGHT))]
        + [
            Revision(f"r{i + 1}", start, Limits(**{**TIGHT, "api_calls_per_day": 900 - i}))
            for i, start in enumerate(sorted(set(draw_starts)))
        ]
    )


def run(events: list[dict[str, Any]], policy: Policy) -> tuple[list[Any], list[int]]:
    """The records and, per record, the tenant clock when it was emitted."""
    ledger = Ledger(policy)
    records, clocks = [], []
    for event in events:
        out = ledger.process(orjson.dumps(event), f"src:{event['event_id']}")
        records += out
        clocks += [ledger.states["acme"].clock_ms] * len(out)
    return records, clocks


@settings(max_examples=80, deadline=None)
@given(events=tenant_history())
def test_time_is_conserved_accrued_never_exceeds_each_sessions_wall_time(
    events: list[dict[str, Any]],
) -> None:
    records, _ = run(events, revisions([]))
    wall: dict[str, tuple[int, int]] = {}
    for event in events:
        sid = event.get("session_id")
        if sid:
            lo, hi = wall.get(sid, (event["ts"], event["ts"]))
            wall[sid] = (min(lo, event["ts"]), max(hi, event["ts"]))
    accrued: dict[str, int] = {}
    for record in records:
        if isinstance(record, UsageAccrual):
            accrued[record.session_id] = accrued.get(record.session_id, 0) + record.raw_ms
    for sid, total in accrued.items():
        assert total <= wall[sid][1] - wall[sid][0]


@settings(max_examples=80, deadline=None)
@given(
    events=tenant_history(),
    starts=st.lists(st.integers(ms("2026-03-27T00:00"), ms("2026-03-31T00:00")), max_size=3),
)
def test_no_period_is_judged_by_a_revision_that_starts_after_the_period_does(
    events: list[dict[str, Any]], starts: list[int]
) -> None:
    policy = revisions(starts)
    begins = {r.id: r.effective_from_ms for r in policy.revisions}
    records, _ = run(events, policy)
    calendar = calendar_for("UTC")
    for record in records:
        if isinstance(record, Violation):
            period_start = calendar.period_start(record.period)
            assert begins[record.policy_revision] <= max(period_start, begins["r0"])


@settings(max_examples=80, deadline=None)
@given(events=tenant_history())
def test_notices_are_never_due_when_issued_and_one_strike_per_local_day(
    events: list[dict[str, Any]],
) -> None:
    records, clocks = run(events, revisions([]))
    for record, clock in zip(records, clocks, strict=True):
        if isinstance(record, Enforcement) and record.kind == "notice":
            assert record.effective_at >= clock
    calendar = calendar_for("UTC")
    strikes_by_id = {
        s for r in records if isinstance(r, Enforcement) and r.kind == "notice" for s in r.strikes
    }
    days = [
        calendar.day_of(v.ts)
        for v in records
        if isinstance(v, Violation) and v.violation_id in strikes_by_id
    ]
    assert len(days) == len(set(days))


def test_a_heartbeat_after_a_gap_never_accrues_the_gap() -> None:
    ledger = Ledger(revisions([]))
    t0 = ms("2026-03-02T09:00")
    for i, (kind, ts) in enumerate(
        (("session_started", t0), ("session_heartbeat", t0 + MINUTE), ("session_stopped", t0 + DAY))
    ):
        event = {"type": kind, "event_id": f"e{i}", "tenant_id": "acme", "ts": ts}
        event |= {"session_id": "s", "user_id": "u", "media": "audio"}
        ledger.process(orjson.dumps(event), "x")
    row = ledger.states["acme"].periods["audio_hours"]["2026-03"]
    assert row.raw_ms == MINUTE < HOUR
