"""Batch boundaries are reproducible after a crash, whatever arrived in between."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from fairuse.warehouse.batching import Batcher, decode_plan, encode_plan

TOPICS = {"ev": "events", "us": "usage"}


def _event(i: int) -> bytes:
    return b'{"type":"api_call","event_id":"e%d","tenant_id":"t","ts":1793577600000,"count":1}' % i


def _cuts(batches) -> list[tuple[str, int, int, int]]:
    return [(b.topic, b.partition, b.first, b.last) for b in batches]


def test_size_and_age_bounds() -> None:
    batcher = Batcher(TOPICS, max_rows=3, max_ms=1000)
    for offset in range(4):
        batcher.add("ev", 0, offset, _event(offset), now_s=10.0)
    assert _cuts(batcher.due(10.0)) == [("ev", 0, 0, 2)]
    assert batcher.due(10.5) == [] and batcher.pending == 1
    assert _cuts(batcher.due(11.0)) == [("ev", 0, 3, 3)]


def test_tokens_name_topic_partition_offsets_and_table() -> None:
    batcher = Batcher(TOPICS, max_rows=2, max_ms=1000)
    batcher.add("ev", 4, 7, _event(7), 0.0)
    batcher.add("ev", 4, 8, b"garbage", 0.0)
    (batch,) = batcher.due(0.0)
    assert batch.token("events") == "ev-4-7-8-events"
    assert batch.token("dead_letters") == "ev-4-7-8-dead_letters"
    assert {t: len(r) for t, r in batch.rows.items()} == {"events": 1, "dead_letters": 1}


def test_a_plan_cuts_exactly_at_its_offsets_and_waits_for_them() -> None:
    batcher = Batcher(TOPICS, max_rows=1000, max_ms=100)
    batcher.set_plan(("ev", 0), [2, 4])
    for offset in range(3):
        batcher.add("ev", 0, offset, _event(offset), 0.0)
    assert _cuts(batcher.due(99.0)) == [("ev", 0, 0, 2)]
    batcher.add("ev", 0, 3, _event(3), 100.0)
    assert batcher.due(500.0, drain=True) == []  # planned batch 3..4 is never cut early
    batcher.add("ev", 0, 4, _event(4), 100.0)
    batcher.add("ev", 0, 5, _event(5), 100.0)  # after the plan: normal bounds again
    assert _cuts(batcher.due(100.0)) == [("ev", 0, 3, 4)]
    assert _cuts(batcher.due(100.0, drain=True)) == [("ev", 0, 5, 5)]


def test_a_planned_end_missing_from_the_log_cuts_before_the_next_offset() -> None:
    batcher = Batcher(TOPICS, max_rows=1000, max_ms=100)
    batcher.set_plan(("ev", 0), [5])
    for offset in (3, 4, 7):  # 5 and 6 were transaction markers
        batcher.add("ev", 0, offset, _event(offset), 0.0)
    assert _cuts(batcher.due(0.0)) == [("ev", 0, 3, 4)]


def test_forget_drops_held_batches_of_revoked_partitions() -> None:
    batcher = Batcher(TOPICS, max_rows=1000, max_ms=100)
    batcher.add("ev", 0, 0, _event(0), 0.0)
    batcher.add("ev", 1, 0, _event(0), 0.0)
    batcher.forget([("ev", 0)])
    assert _cuts(batcher.due(0.0, drain=True)) == [("ev", 1, 0, 0)]


def test_plan_metadata_round_trips() -> None:
    assert decode_plan(encode_plan([9, 19])) == [9, 19]
    assert decode_plan("") == [] and decode_plan(None) == [] and decode_plan("other") == []


@given(
    total=st.integers(min_value=1, max_value=60),
    max_rows=st.integers(min_value=1, max_value=10),
    arrivals=st.lists(st.integers(min_value=1, max_value=15), min_size=1, max_size=20),
    flushes_before_crash=st.integers(min_value=1, max_value=5),
)
def test_replay_after_a_crash_repeats_the_planned_batches(
    total: int, max_rows: int, arrivals: list[int], flushes_before_crash: int
) -> None:
    """Run 1 flushes batches as messages trickle in; it crashes after inserting flush k. Run 2
    sees everything at once but, given the plans of flush k, cuts the same batches first."""
    first = Batcher(TOPICS, max_rows=max_rows, max_ms=50)
    offset, clock, flushes, crashed = 0, 0.0, [], None
    for chunk in arrivals:
        for _ in range(chunk):
            if offset < total:
                first.add("ev", 0, offset, _event(offset), clock)
                offset += 1
        clock += 0.06  # every chunk ages out what is held
        ready = first.due(clock)
        if ready:
            flushes.append(ready)
            if len(flushes) == flushes_before_crash:
                crashed = ready
                break
    assume(crashed is not None)
    committed = crashed[0].first  # offsets before the crashed flush were committed
    second = Batcher(TOPICS, max_rows=1000, max_ms=10**9)
    second.set_plan(("ev", 0), decode_plan(encode_plan([b.last for b in crashed])))
    for n in range(committed, total):
        second.add("ev", 0, n, _event(n), 0.0)
    replayed = second.due(0.0)
    assert _cuts(replayed[: len(crashed)]) == _cuts(crashed)
    assert [b.token("events") for b in replayed[: len(crashed)]] == [
        b.token("events") for b in crashed
    ]
