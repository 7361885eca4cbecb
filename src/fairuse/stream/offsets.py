"""Which consumed offsets the worker may commit: contiguous runs only, per partition.

Messages fetched before a rebalance can be dropped, or delivered again, around it; if anything
committed past a dropped message it would be lost. So the worker commits offsets itself (in
each batch's transaction), never past a message it has not processed. :class:`OffsetTracker` is
that bookkeeping, without I/O: it filters each batch to the messages that continue their
partition's run, and reports where to seek when a partition's run has a hole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


class Located(Protocol):
    """Anything with a partition and an offset (a consumed message)."""

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


@dataclass(slots=True)
class Admitted:
    """The outcome of :meth:`OffsetTracker.admit` for one batch."""

    messages: list = field(default_factory=list)
    seek: dict[int, int] = field(default_factory=dict)  # partition -> offset to fetch again
    dropped: int = 0


class OffsetTracker:
    """Next offset to process per partition; unknown partitions start at their committed one."""

    def __init__(self) -> None:
        self.next_offset: dict[int, int] = {}

    def reset(self, committed: Mapping[int, int]) -> None:
        """Start over after a rebalance from the group's committed offsets.

        A partition without a committed offset starts at its first delivered message (the
        consumer starts those at the earliest retained offset).
        """
        self.next_offset = dict(committed)

    def admit(self, messages: Iterable[Located]) -> Admitted:
        """Keep the messages that continue their partition's run, in order.

        An already processed offset is dropped (a re-delivery). A message past the next offset
        means the consumer skipped some: it and the rest of its partition in this batch are
        dropped, and the partition must be fetched again from the next offset.
        """
        result = Admitted()
        expected = self.next_offset
        for message in messages:
            partition, offset = message.partition, message.offset
            if partition in result.seek:
                result.dropped += 1
                continue
            want = expected.setdefault(partition, offset)
            if offset == want:
                expected[partition] = offset + 1
                result.messages.append(message)
            elif offset < want:
                result.dropped += 1
            else:
                result.seek[partition] = want
                result.dropped += 1
        return result

    def committable(self, partitions: Iterable[int]) -> dict[int, int]:
        """The offsets to commit for ``partitions`` (the next offset of each)."""
        return {p: self.next_offset[p] for p in partitions if p in self.next_offset}
