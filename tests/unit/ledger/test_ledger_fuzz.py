"""Arbitrary event histories: the ledger never raises and its records keep their invariants."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_support import DAY, HOUR, ms, policy

from fairuse.events import EVENT_TYPES
from fairuse.ledger import Ledger, TenantState, usage_view
from fairuse.records import (
    Adjustment,
    DeadLetter,
    Enforcement,
    Statement,
    UsageAccrual,
    Violation,
)

BASE = ms("2026-01-30T20:00")
ZONE_TENANTS = {"a": "Europe/Berlin", "b": "America/Los_Angeles"}


@st.composite
def any_event(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(EVENT_TYPES)))
    ts = BASE + draw(st.one_of(st.integers(0, 3 * DAY), st.integers(0, 200 * DAY)))
    event: dict[str, Any] = {
        "type": kind,
        "event_id": f"e{draw(st.integers(0, 40))}",
        "tenant_id": draw(st.sampled_from(sorted(ZONE_TENANTS))),
        "ts": ts,
    }
    sid = f"s{draw(st.integers(0, 4))}"
    if kind == "session_started":
        event.update(session_id=sid, user_id=f"u{draw(st.integers(0, 3))}")
        event.update(
            draw(
                st.sampled_from(
                    [
                        {"media": "audio", "channels": 2},
                        {"media": "audio"},
                        {"media": "video", "width": 3840, "height": 2160},
                        {"media": "video", "width": 640, "height": 480},
                    ]
                )
            )
        )
    elif kind in ("session_heartbeat", "session_stopped"):
        event["session_id"] = sid
    elif kind == "api_call":
        event["count"] = draw(st.integers(1, 3000))
    elif kind in ("call_stored", "call_deleted"):
        event["call_id"] = f"c{draw(st.integers(0, 6))}"
    elif kind in ("user_activated", "user_deactivated"):
        event["user_id"] = f"u{draw(st.integers(0, 3))}"
    else:
        starts = ts + draw(st.integers(-DAY, DAY))
        event.update(
            notice_id=f"n{draw(st.integers(0, 2))}",
            starts=starts,
            ends=starts + draw(st.integers(1, 2 * DAY)),
        )
    return event


@settings(max_examples=150, deadline=None)
@given(events=st.lists(any_event(), max_size=60))
def test_arbitrary_histories_keep_the_invariants(events: list[dict[str, Any]]) -> None:
    tenants = {t: policy(timezone=z).revisions[0].limits for t, z in ZONE_TENANTS.items()}
    the_policy = policy(
        tenants=tenants,
        audio_hours_per_day=1,
        video_hours_per_day=1,
        working_days_per_month=1,
        api_calls_per_day=2000,
        stored_calls_per_user=2,
        repeat_threshold=1,
        notice_period_days=1,
    )
    ledger = Ledger(the_policy)
    records = []
    newest: dict[str, int] = {}
    very_late: set[str] = set()  # tenants with an event > 90 days late: periods may be re-opened
    for i, event in enumerate(events):
        records += ledger.process(orjson.dumps(event), f"f:{i}")
        tenant = event["tenant_id"]
        if event["ts"] < newest.get(tenant, 0) - 90 * DAY:
            very_late.add(tenant)
        newest[tenant] = max(newest.get(tenant, 0), event["ts"])

    statuses: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    ladder: dict[str, list[str]] = defaultdict(list)
    stated: dict[str, list[str]] = defaultdict(list)
    for record in records:
        if isinstance(record, UsageAccrual):
            assert record.raw_ms > 0 and record.weighted_ms >= record.raw_ms
        elif isinstance(record, Violation):
            statuses[(record.tenant_id, record.metric, record.period)].append(record.status)
            assert record.seats >= 1 and record.limit > 0
        elif isinstance(record, Enforcement):
            ladder[record.tenant_id].append(record.kind)
            assert record.strikes and record.effective_at >= record.ts
        elif isinstance(record, Statement):
            assert record.excess >= 0 and record.limit > 0 and record.seats >= 1
            stated[record.tenant_id].append(record.statement_id)
        elif isinstance(record, Adjustment):  # of a statement emitted before it
            if record.tenant_id not in very_late:
                assert record.statement_id in stated[record.tenant_id]
        else:
            assert isinstance(record, DeadLetter)
            assert record.reason in (
                "stop_before_start",
                "duplicate_start",
                "notice_out_of_bounds",
                "rejected_session",
            )
    for (tenant, _, _), found in statuses.items():
        if tenant not in very_late:
            assert len(found) == len(set(found))  # each status once per period
        if "exceeded" in found or "excused" in found:
            assert found[0] == "warning"
    for tenant, ids in stated.items():
        if tenant not in very_late:
            assert len(ids) == len(set(ids))  # one statement per tenant, metric and period
    for kinds in ladder.values():  # notice, action, notice, action, ...
        assert all(kind == ("notice", "action")[i % 2] for i, kind in enumerate(kinds))
    for state in ledger.states.values():
        assert TenantState.from_bytes(state.to_bytes(), ledger.keys) == state
        view = usage_view(state, the_policy, state.clock_ms + HOUR)
        assert set(view["metrics"]) == {
            "audio_hours",
            "video_hours",
            "api_calls",
            "stored_calls_per_user",
        }
    assert ledger.expire_idle(BASE + 400 * DAY) == []
    rows = ledger.summary()
    assert rows == sorted(rows, key=lambda r: (r["tenant_id"], r["metric"], r["period"]))
