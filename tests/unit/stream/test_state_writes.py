"""Keyed state through StreamCore: exact dedup, writes only of changed keys, tombstones, parity."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_core import KAFKA, TOPIC, messages, plain_ledger_outputs

from fairuse.ledger import Ledger
from fairuse.ledger.dedup import DEFAULT_HORIZON_MS, SeenIds
from fairuse.ledger.keyed import HOUR_MS, DictKeys
from fairuse.policy import DEFAULT_POLICY
from fairuse.stream.core import (
    Inbound,
    Overlay,
    StateWrite,
    StreamCore,
    TenantEntry,
    apply_writes,
    entry_key,
    tenant_of_key,
)

T0 = 1_800_000_000_000
DAY_MS = 86_400_000


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=12), st.integers(0, 20 * DAY_MS)),
        max_size=80,
    )
)
def test_dedup_is_exact(events: list[tuple[str, int]]) -> None:
    """Dropped iff an earlier kept occurrence's hour is within the horizon; distinct ids never
    collide, whatever their text."""
    events.sort(key=lambda e: e[1])
    seen = SeenIds(DictKeys(), "acme")
    kept: dict[str, list[int]] = {}
    clock = 0
    for i, (event_id, offset) in enumerate(events):
        ts = T0 + offset
        if i % 7 == 0:  # the ledger prunes once per event-time day; any moment is allowed
            seen.prune(clock - DEFAULT_HORIZON_MS)
        expected = any(
            (t // HOUR_MS + 1) * HOUR_MS > clock - DEFAULT_HORIZON_MS
            for t in kept.get(event_id, ())
        )
        assert seen.check_and_remember(event_id, ts, clock, DEFAULT_HORIZON_MS) == expected
        if not expected:
            kept.setdefault(event_id, []).append(ts)
        clock = max(clock, ts)


def test_prefix_like_ids_are_distinct() -> None:
    seen = SeenIds(DictKeys(), "acme")
    for event_id in ["a", "a/", "a/0", "ah/0", "", "0"]:
        assert not seen.check_and_remember(event_id, T0, T0, DEFAULT_HORIZON_MS)
        assert seen.check_and_remember(event_id, T0, T0, DEFAULT_HORIZON_MS)


def stream(batches: list[tuple[Inbound, ...]], store: dict[str, bytes]) -> list[list[StateWrite]]:
    """Run the batches through one StreamCore, checking every commit's writes."""
    core = StreamCore(DEFAULT_POLICY, KAFKA, store, cached_tenants=2)
    commits = []
    for batch in batches:
        core.process(batch)
        writes = core.commit()
        keys = [w.key for w in writes]
        assert len(keys) == len(set(keys))
        for write in writes:
            assert store.get(write.key) != write.value  # only keys whose value changes
            assert write.key.startswith(tenant_of_key(write.key) + "/")
        apply_writes(store, writes)
        commits.append(writes)
    return commits


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, 900), min_size=1, max_size=30))
def test_streaming_with_apply_writes_equals_replay(sizes: list[int]) -> None:
    """Outputs, and the stored state key for key, equal a plain ledger over the same events."""
    all_messages = messages()
    batches, start = [], 0
    for size in sizes:
        batches.append(all_messages[start : start + size])
        start += size
    batches.append(all_messages[start:])
    store: dict[str, bytes] = {}
    core = StreamCore(DEFAULT_POLICY, KAFKA, store, cached_tenants=2)
    outputs = []
    for batch in batches:
        outputs += [o.value for o in core.process(batch).outputs]
        apply_writes(store, core.commit())
    assert outputs == [r.to_json() for r in plain_ledger_outputs()]
    ledger = Ledger(DEFAULT_POLICY)
    for message in all_messages:
        ledger.process(message.value, message.source)
    for state in ledger.states.values():
        state.to_bytes()  # seals: every id listed in an index key
    assert items(store) == items(ledger.keys.data)  # type: ignore[attr-defined]
    for tenant, state in ledger.states.items():
        entry = TenantEntry.from_bytes(store[entry_key(tenant)], Overlay(store))
        # the index records split where the batches ended, so their counts differ
        entry.state.seen.hours = state.seen.hours
        entry.state.ended.hours = state.ended.hours
        assert entry.state == state


def items(store: dict[str, bytes]) -> tuple[dict[str, bytes], list[tuple[str, str, str]]]:
    """The keyed items and the (tenant, kind, id) listed in the expiry indexes."""
    plain = {k: v for k, v in store.items() if k.split("/")[1] in ("c", "i", "s")}
    listed = sorted(
        (k.split("/")[0], k.split("/")[1], item)
        for k, v in store.items()
        if k.split("/")[1] in ("ih", "sh")
        for item in orjson.loads(v)
    )
    return plain, listed


def event(tenant: str, offset: int, ts: int, kind: str, **fields: object) -> Inbound:
    obj = {"type": kind, "event_id": f"{tenant}-{offset}", "tenant_id": tenant, "ts": ts}
    return Inbound(orjson.dumps({**obj, **fields}), TOPIC, 0, offset)


def test_a_batch_writes_what_it_changed_not_the_history() -> None:
    store: dict[str, bytes] = {}
    calls = [event("big", i, T0 + i, "call_stored", call_id=f"call-{i}") for i in range(5000)]
    stream([tuple(calls[i : i + 1000]) for i in range(0, 5000, 1000)], store)
    assert sum(k.startswith("big/c/") for k in store) == 5000
    [writes] = stream([(event("big", 5000, T0 + 5000, "api_call"),)], store)
    # the entry, the event id and its place in the hour's index; the call ids are not rewritten
    assert sorted(w.key.split("/")[1] for w in writes) == ["e", "i", "ih"]
    assert sum(len(w.key) + len(w.value or b"") for w in writes) < 2000
    [writes] = stream([(event("big", 5001, T0 + 5001, "call_deleted", call_id="call-7"),)], store)
    assert StateWrite("big/c/call-7", None, 0) in writes  # a tombstone


def test_expired_ids_and_stopped_sessions_are_deleted_with_tombstones() -> None:
    store: dict[str, bytes] = {}
    first = [
        event("t", 0, T0, "session_started", session_id="s", user_id="u", media="audio"),
        event("t", 1, T0 + 60_000, "session_stopped", session_id="s"),
    ]
    stream([tuple(first)], store)
    assert {"t/i/t-0", "t/i/t-1", "t/s/s"} <= set(store)
    later = [event("t", 2 + d, T0 + d * DAY_MS, "api_call") for d in range(1, 10)]
    commits = stream([(e,) for e in later], store)
    deleted = {w.key for writes in commits for w in writes if w.value is None}
    assert {"t/i/t-0", "t/i/t-1", "t/s/s", f"t/ih/{T0 // HOUR_MS}/0"} <= deleted
    # what is left: the entry and the ids (with their index) of the last 7 days and a bit
    assert sum(k.startswith("t/i/") for k in store) == sum(k.startswith("t/ih/") for k in store)
    assert sum(k.startswith("t/i/") for k in store) <= 8
    assert "t/s/s" not in store and store.get("t/e") is not None


def test_discard_forgets_the_batch() -> None:
    store: dict[str, bytes] = {}
    core = StreamCore(DEFAULT_POLICY, KAFKA, store)
    core.process([event("t", 0, T0, "call_stored", call_id="c")])
    core.discard()
    assert core.commit() == [] and store == {}
    core.process([event("t", 0, T0, "call_stored", call_id="c")])
    apply_writes(store, core.commit())
    assert core.usage("t")["metrics"]["stored_calls_per_user"]["observed"] == 1.0
