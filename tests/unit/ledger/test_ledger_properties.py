"""Hypothesis properties of the ledger: conservation, idempotence, interleaving, round trip."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_support import DAY, HOUR, ms, policy

from fairuse.ledger import Ledger, TenantState
from fairuse.ledger.keyed import DictKeys
from fairuse.ledger.weights import session_weight
from fairuse.records import UsageAccrual

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
BASE = ms("2026-03-27T00:00")  # spans the Berlin / New York DST changes and a month end


@st.composite
def session_events(draw: st.DrawFn, sid: str) -> list[dict[str, Any]]:
    """One session's events in order: start, heartbeats, stop."""
    start = BASE + draw(st.integers(0, 4 * DAY))
    media = draw(st.sampled_from(["audio", "video"]))
    extra: dict[str, Any] = (
        {"channels": draw(st.integers(1, 2))}
        if media == "audio"
        else {"width": draw(st.sampled_from([1280, 1920, 2560, 3840])), "height": 1440}
    )
    events = [
        {
            "type": "session_started",
            "ts": start,
            "session_id": sid,
            "user_id": f"u-{sid}",
            "media": media,
            **extra,
        }
    ]
    ts = start
    for gap in draw(st.lists(st.integers(1, 3 * HOUR), max_size=6)):
        ts += gap
        events.append({"type": "session_heartbeat", "ts": ts, "session_id": sid})
    ts += draw(st.integers(0, 30 * HOUR))
    events.append({"type": "session_stopped", "ts": ts, "session_id": sid})
    return events


@st.composite
def tenant_history(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A tenant's events: a few sessions interleaved at random, plus other events."""
    streams = [draw(session_events(f"s{i}")) for i in range(draw(st.integers(1, 4)))]
    others = (
        [
            {
                "type": "api_call",
                "ts": BASE + draw(st.integers(0, 4 * DAY)),
                "count": draw(st.integers(1, 1500)),
            }
            for _ in range(draw(st.integers(0, 4)))
        ]
        + [
            {
                "type": "call_stored",
                "ts": BASE + draw(st.integers(0, 4 * DAY)),
                "call_id": f"c{draw(st.integers(0, 5))}",
            }
            for _ in range(draw(st.integers(0, 4)))
        ]
        + [
            {
                "type": draw(st.sampled_from(["user_activated", "user_deactivated"])),
                "ts": BASE + draw(st.integers(0, 4 * DAY)),
                "user_id": f"u{draw(st.integers(0, 2))}",
            }
            for _ in range(draw(st.integers(0, 4)))
        ]
    )
    streams += [[event] for event in others]
    merged: list[dict[str, Any]] = []
    while any(streams):
        live = [s for s in streams if s]
        merged.append(draw(st.sampled_from(live)).pop(0))
    for i, event in enumerate(merged):
        event.update(event_id=f"e{i}", tenant_id="acme")
    return merged


def run(events: list[dict[str, Any]], zone: str = "UTC", **limits: Any):
    ledger = Ledger(policy(timezone=zone, **limits))
    records = []
    for event in events:
        records += ledger.process(orjson.dumps(event), f"src:{event['event_id']}")
    return ledger, records


@settings(max_examples=150, deadline=None)
@given(events=session_events("s1"), zone=st.sampled_from(ZONES))
def test_usage_is_conserved_across_day_splits(events: list[dict[str, Any]], zone: str) -> None:
    for i, event in enumerate(events):
        event.update(event_id=f"e{i}", tenant_id="acme")
    _, records = run(events, zone)
    pieces = [r for r in records if isinstance(r, UsageAccrual)]
    start, stop = events[0]["ts"], events[-1]["ts"]
    assert sum(p.raw_ms for p in pieces) == stop - start
    first = events[0]
    weight = session_weight(
        first["media"],
        first.get("channels", 1),
        first.get("width", 1920),
        first.get("height", 1080),
    )
    assert sum(p.weighted_ms for p in pieces) == pytest.approx(weight * (stop - start), rel=1e-12)
    assert all(p.raw_ms > 0 for p in pieces)
    per_event_days = [(p.event_id, p.day) for p in pieces]
    assert len(per_event_days) == len(set(per_event_days))


@settings(max_examples=100, deadline=None)
@given(events=tenant_history(), data=st.data())
def test_duplicates_change_nothing(events: list[dict[str, Any]], data: st.DataObject) -> None:
    with_duplicates = list(events)
    copies = data.draw(st.lists(st.integers(0, len(events) - 1), max_size=6))
    for index in copies:
        original = next(i for i, e in enumerate(with_duplicates) if e is events[index])
        position = data.draw(st.integers(original + 1, len(with_duplicates)))
        with_duplicates.insert(position, dict(events[index]))  # a redelivery after the original
    ledger, records = run(events, api_calls_per_day=1000, stored_calls_per_user=2)
    again, records_again = run(with_duplicates, api_calls_per_day=1000, stored_calls_per_user=2)
    assert records_again == records
    assert again.duplicates == len(copies)
    assert again.summary() == ledger.summary()


@settings(max_examples=100, deadline=None)
@given(events=tenant_history(), data=st.data())
def test_totals_do_not_depend_on_how_sessions_interleave(
    events: list[dict[str, Any]], data: st.DataObject
) -> None:
    """Any order that keeps each session's own events in order gives the same totals."""
    by_stream: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_stream.setdefault(event.get("session_id") or event["event_id"], []).append(event)
    streams = [list(s) for s in by_stream.values()]
    shuffled: list[dict[str, Any]] = []
    while any(streams):
        shuffled.append(data.draw(st.sampled_from([s for s in streams if s])).pop(0))
    # non-session events keep their relative order, so roster and stored calls end the same
    non_session = [e for e in events if "session_id" not in e]
    reordered = iter(non_session)
    shuffled = [e if "session_id" in e else next(reordered) for e in shuffled]
    first, _ = run(events)
    second, _ = run(shuffled)
    rows, rows_again = first.summary(), second.summary()
    assert [(r["metric"], r["period"]) for r in rows] == [
        (r["metric"], r["period"]) for r in rows_again
    ]
    for row, row_again in zip(rows, rows_again, strict=True):
        assert row.get("raw_hours") == row_again.get("raw_hours")  # exact ms, so exact hours
        assert row["observed"] == pytest.approx(row_again["observed"], rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(events=tenant_history(), zone=st.sampled_from(ZONES))
def test_tenant_state_bytes_round_trip(events: list[dict[str, Any]], zone: str) -> None:
    ledger, _ = run(events, zone, api_calls_per_day=1000, repeat_threshold=1)
    state = ledger.states["acme"]
    data = state.to_bytes()
    assert TenantState.from_bytes(data, ledger.keys) == state
    assert TenantState.from_bytes(data, ledger.keys).to_bytes() == data


@settings(max_examples=60, deadline=None)
@given(events=tenant_history(), data=st.data())
def test_streaming_restarts_and_expiry_sweeps_change_no_record(
    events: list[dict[str, Any]], data: st.DataObject
) -> None:
    """Like streaming: state reloaded from bytes at random points, expire_idle called at random
    watermarks; the records are those of one uninterrupted replay."""
    _, expected = run(events)
    ledger = Ledger(policy())
    records = []
    watermark = 0
    for event in events:
        if data.draw(st.booleans()):  # a restart: state only from its bytes
            keys = DictKeys(dict(ledger.keys.data))
            states = {
                t: TenantState.from_bytes(s.to_bytes(), keys) for t, s in ledger.states.items()
            }
            ledger = Ledger(policy(), states, keys=keys)
        if data.draw(st.booleans()):
            assert ledger.expire_idle(watermark + data.draw(st.integers(0, 2 * HOUR))) == []
        records += ledger.process(orjson.dumps(event), f"src:{event['event_id']}")
        watermark = max(watermark, event["ts"])
    assert records == expected
