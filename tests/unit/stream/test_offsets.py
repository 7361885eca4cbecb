"""OffsetTracker: commit only contiguous runs; a hole means fetch again."""

from __future__ import annotations

from dataclasses import dataclass

from fairuse.stream.offsets import OffsetTracker


@dataclass(frozen=True)
class Msg:
    partition: int
    offset: int


def test_contiguous_runs_pass_and_set_the_committable_offsets() -> None:
    tracker = OffsetTracker()
    tracker.reset({0: 10})
    admitted = tracker.admit([Msg(0, 10), Msg(1, 0), Msg(0, 11), Msg(1, 1)])
    assert admitted.messages == [Msg(0, 10), Msg(1, 0), Msg(0, 11), Msg(1, 1)]
    assert admitted.seek == {} and admitted.dropped == 0
    assert tracker.committable([0, 1, 2]) == {0: 12, 1: 2}


def test_a_hole_drops_the_rest_of_that_partition_and_asks_for_a_seek() -> None:
    tracker = OffsetTracker()
    tracker.reset({0: 5, 1: 0})
    admitted = tracker.admit([Msg(0, 5), Msg(0, 9), Msg(1, 0), Msg(0, 10), Msg(1, 1)])
    assert admitted.messages == [Msg(0, 5), Msg(1, 0), Msg(1, 1)]
    assert admitted.seek == {0: 6}
    assert admitted.dropped == 2
    assert tracker.committable([0, 1]) == {0: 6, 1: 2}
    # After the seek the skipped messages come again and continue the run.
    again = tracker.admit([Msg(0, 6), Msg(0, 7)])
    assert again.messages == [Msg(0, 6), Msg(0, 7)] and again.seek == {}


def test_redelivered_offsets_are_dropped_and_reset_starts_from_committed() -> None:
    tracker = OffsetTracker()
    tracker.reset({0: 3})
    assert tracker.admit([Msg(0, 1), Msg(0, 2)]).dropped == 2
    assert tracker.admit([Msg(0, 3)]).messages == [Msg(0, 3)]
    tracker.reset({0: 2})
    assert tracker.admit([Msg(0, 2)]).messages == [Msg(0, 2)]
