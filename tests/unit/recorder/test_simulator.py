"""The fleet simulator: deterministic, valid, ordered per tenant, and its breakers really break."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairuse.events import (
    EVENT_TYPES,
    ApiCall,
    CallDeleted,
    CallStored,
    Rejection,
    SessionHeartbeat,
    SessionStarted,
    SessionStopped,
    UserActivated,
    UserDeactivated,
    encode_event,
    parse_event,
)
from fairuse.recorder.simulator import (
    BREAKER_KINDS,
    DAY_MS,
    HOUR_MS,
    Emission,
    FleetConfig,
    simulate,
    tenant_profiles,
)

MONTH = FleetConfig(seed=7, tenants=8, breaker_share=0.5, duration_ms=30 * DAY_MS)


@pytest.fixture(scope="module")
def month() -> list[Emission]:
    """A month of 8 tenants, 4 of them breakers (one of each kind)."""
    return list(simulate(MONTH))


@pytest.fixture(scope="module")
def breakers() -> dict[str, str]:
    return {p.tenant_id: p.breaker for p in tenant_profiles(MONTH) if p.breaker}


def payloads(config: FleetConfig, limit: int) -> list[bytes]:
    return [e.payload for e in itertools.islice(simulate(config), limit)]


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    config = FleetConfig(seed=3, tenants=5, duration_ms=2 * DAY_MS, fault_rate=0.01)
    assert payloads(config, 20_000) == payloads(config, 20_000)
    other = FleetConfig(seed=4, tenants=5, duration_ms=2 * DAY_MS, fault_rate=0.01)
    assert payloads(config, 20_000) != payloads(other, 20_000)


def test_every_payload_is_a_valid_event_with_a_unique_id(month: list[Emission]) -> None:
    ids = set()
    for emission in month:
        parsed = parse_event(emission.payload)
        assert not isinstance(parsed, Rejection), (parsed, emission.payload)
        assert parsed == emission.event
        assert encode_event(parsed) == emission.payload
        assert parsed.tenant_id == emission.tenant_id
        ids.add(parsed.event_id)
    assert len(ids) == len(month)


def test_event_time_order_per_tenant_and_merged_delivery_order(month: list[Emission]) -> None:
    last: dict[str, int] = {}
    for emission in month:
        assert emission.event is not None
        assert emission.at == emission.event.ts
        assert emission.event.ts >= last.get(emission.tenant_id, 0)
        last[emission.tenant_id] = emission.event.ts
    ats = [e.at for e in month]
    assert ats == sorted(ats)
    assert MONTH.start_ms <= ats[0] and ats[-1] < MONTH.start_ms + 30 * DAY_MS


def test_every_event_type_and_media_variant_occurs(month: list[Emission]) -> None:
    kinds = Counter(e.event.type for e in month if e.event)
    assert set(kinds) == set(EVENT_TYPES)
    starts = [e.event for e in month if isinstance(e.event, SessionStarted)]
    assert {s.channels for s in starts if s.media == "audio"} == {1, 2}
    assert {(s.width, s.height) for s in starts if s.media == "video"} == {
        (1280, 720),
        (1920, 1080),
        (2560, 1440),
        (3840, 2160),
    }
    assert any(isinstance(e.event, ApiCall) and e.event.count > 1 for e in month)


def test_sessions_start_beat_every_heartbeat_period_and_stop(month: list[Emission]) -> None:
    times: dict[str, list[int]] = defaultdict(list)
    kinds: dict[str, list[str]] = defaultdict(list)
    for emission in month:
        event = emission.event
        if isinstance(event, SessionStarted | SessionHeartbeat | SessionStopped):
            times[event.session_id].append(event.ts)
            kinds[event.session_id].append(event.type)
    assert len(times) > 1000
    step_ms = MONTH.heartbeat_s * 1000
    for session, seen in kinds.items():
        assert seen[0] == "session_started"
        if seen[-1] == "session_stopped":  # the last sessions may run past the end
            assert set(seen[1:-1]) <= {"session_heartbeat"}
            beats = times[session]
            assert {b - a for a, b in itertools.pairwise(beats[:-1])} <= {step_ms}
            assert 0 < beats[-1] - beats[-2] <= step_ms


def test_working_days_are_busier_than_weekends(
    month: list[Emission], breakers: dict[str, str]
) -> None:
    by_weekday: Counter[bool] = Counter()
    for emission in month:
        if isinstance(emission.event, SessionStarted) and emission.tenant_id not in breakers:
            day = datetime.fromtimestamp(emission.at / 1000, UTC).weekday()
            by_weekday[day < 5] += 1
    # about 22 working days and 8 weekend days; weekends far quieter per day
    assert by_weekday[True] / 22 > 5 * by_weekday[False] / 8


def _media_hours(month: list[Emission]) -> dict[tuple[str, str], float]:
    started: dict[str, SessionStarted] = {}
    hours: Counter[tuple[str, str]] = Counter()
    for emission in month:
        event = emission.event
        if isinstance(event, SessionStarted):
            started[event.session_id] = event
        elif isinstance(event, SessionStopped):
            begin = started[event.session_id]
            hours[(event.tenant_id, begin.media)] += (event.ts - begin.ts) / HOUR_MS
    return hours


def _seats(month: list[Emission]) -> Counter[str]:
    seats: Counter[str] = Counter()
    for emission in month:
        if isinstance(emission.event, UserActivated):
            seats[emission.tenant_id] += 1
        elif isinstance(emission.event, UserDeactivated):
            seats[emission.tenant_id] -= 1
    return seats


def test_one_breaker_of_each_kind(breakers: dict[str, str]) -> None:
    assert sorted(breakers.values()) == sorted(BREAKER_KINDS)


def test_media_breakers_exceed_their_monthly_hours_per_seat_and_others_do_not(
    month: list[Emission], breakers: dict[str, str]
) -> None:
    hours, seats = _media_hours(month), _seats(month)
    allowance = {"audio": 8 * 22, "video": 5 * 22}  # hours per seat over a month
    for (tenant, media), total in hours.items():
        per_seat = total / seats[tenant]
        if breakers.get(tenant) == media:
            assert per_seat > 1.2 * allowance[media], (tenant, media, per_seat)
        else:
            assert per_seat < 0.8 * allowance[media], (tenant, media, per_seat)
    assert {breakers[t] for (t, _m) in hours if t in breakers} >= {"audio", "video"}


def test_api_breaker_exceeds_2400_calls_every_utc_day_others_never(
    month: list[Emission], breakers: dict[str, str]
) -> None:
    calls: Counter[tuple[str, int]] = Counter()
    for emission in month:
        if isinstance(emission.event, ApiCall):
            calls[(emission.tenant_id, (emission.at - MONTH.start_ms) // DAY_MS)] += (
                emission.event.count
            )
    api_breaker = next(t for t, kind in breakers.items() if kind == "api")
    for day in range(30):
        assert calls[(api_breaker, day)] > 2400
    assert all(n <= 2400 for (t, _d), n in calls.items() if t != api_breaker)


def test_storage_breaker_exceeds_10000_stored_calls_per_user_others_stay_low(
    month: list[Emission], breakers: dict[str, str]
) -> None:
    stored: Counter[str] = Counter()
    for emission in month:
        if isinstance(emission.event, CallStored):
            stored[emission.tenant_id] += 1
        elif isinstance(emission.event, CallDeleted):
            stored[emission.tenant_id] -= 1
    seats = _seats(month)
    for tenant, count in stored.items():
        ratio = count / seats[tenant]
        if breakers.get(tenant) == "storage":
            assert ratio > 10_000
        else:
            assert ratio < 1_000


def test_calls_are_deleted_only_after_they_were_stored(month: list[Emission]) -> None:
    stored: dict[str, int] = {}
    deletions = 0
    for emission in month:
        if isinstance(emission.event, CallStored):
            stored[emission.event.call_id] = emission.at
        elif isinstance(emission.event, CallDeleted):
            assert stored.pop(emission.event.call_id) < emission.at
            deletions += 1
    assert deletions > 0


def test_faults_are_marked_and_each_kind_breaks_what_it_says() -> None:
    config = FleetConfig(seed=5, tenants=4, duration_ms=3 * DAY_MS, fault_rate=0.01)
    seen: dict[str, bytes] = {}
    starts: dict[str, int] = {}
    kinds: Counter[str] = Counter()
    for emission in simulate(config):
        parsed = parse_event(emission.payload)
        kinds[emission.fault or "none"] += 1
        if emission.fault == "garbage":
            assert isinstance(parsed, Rejection)
            continue
        assert not isinstance(parsed, Rejection)
        if emission.fault == "duplicate":
            assert seen[parsed.event_id] == emission.payload
        else:
            assert parsed.event_id not in seen
        if emission.fault == "stop_before_start":
            assert isinstance(parsed, SessionStopped)
            assert parsed.ts < starts[parsed.session_id]
        if isinstance(parsed, SessionStarted):
            starts[parsed.session_id] = parsed.ts
        seen[parsed.event_id] = emission.payload
    assert {"duplicate", "stop_before_start", "garbage"} <= set(kinds)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    tenants=st.integers(1, 4),
    hours=st.integers(1, 72),
    start_day=st.integers(0, 365),
    heartbeat_s=st.sampled_from([15, 30, 60, 300]),
)
def test_invariants_for_any_seed_and_window(
    seed: int, tenants: int, hours: int, start_day: int, heartbeat_s: int
) -> None:
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000) + start_day * DAY_MS
    config = FleetConfig(
        seed=seed,
        tenants=tenants,
        start_ms=start,
        duration_ms=hours * HOUR_MS,
        heartbeat_s=heartbeat_s,
    )
    last: dict[str, int] = {}
    ids = set()
    open_sessions: set[str] = set()
    for emission in simulate(config):
        event = parse_event(emission.payload)
        assert not isinstance(event, Rejection)
        assert start <= event.ts < start + hours * HOUR_MS
        assert event.ts >= last.get(event.tenant_id, start)
        last[event.tenant_id] = event.ts
        assert event.event_id not in ids
        ids.add(event.event_id)
        if isinstance(event, SessionStarted):
            open_sessions.add(event.session_id)
        elif isinstance(event, SessionHeartbeat | SessionStopped):
            assert event.session_id in open_sessions  # never a beat of an unknown session
            if isinstance(event, SessionStopped):
                open_sessions.remove(event.session_id)
