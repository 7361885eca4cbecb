"""A rebalance while fetches are queued: messages of revoked partitions make no hole.

Seen in a full run: after a rebalance the feed still held fetches of a partition that had
moved away; their offsets had a gap (records of a paused partition are not handed over), so
the worker recorded a hole on a partition it no longer owned and tried to re-fetch it every
2 s forever ("partition N no longer assigned").
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from test_feed import fetch

from fairuse.stream.core import Inbound, StreamCore
from fairuse.stream.delivery import BatchDelivery, PartitionProducers
from fairuse.stream.feed import FetchFeed


class Core:
    """The core as far as admitting messages needs it."""

    def discard(self) -> None:
        return None


class Producers:
    """Producers that start at once, or (``starting``) not yet."""

    def __init__(self, starting: bool) -> None:
        self.starting = starting
        self.started: set[int] = set()
        self.fenced: set[int] = set()

    async def assign(self, partitions: set[int]) -> None:
        self.started = set() if self.starting else set(partitions)

    def get(self, partition: int) -> Any:
        return object() if partition in self.started - self.fenced else None


def delivery(
    seeks: list[tuple[int, int]], start: dict[int, int], starting: bool = False
) -> BatchDelivery:
    async def seek(partition: int, offset: int) -> None:
        seeks.append((partition, offset))

    async def start_offsets() -> dict[int, int]:
        return dict(start)

    return BatchDelivery(
        core=cast(StreamCore, Core()),
        producers=cast(PartitionProducers, Producers(starting)),
        events_topic="ev",
        group_id="g",
        tenants=cast(Any, None),
        tenants_changelog="t",
        positions=cast(Any, None),
        positions_changelog="p",
        seek=seek,
        start_offsets=start_offsets,
    )


def offsets(admitted: dict[int, list[Inbound]]) -> dict[int, list[int]]:
    return {p: [m.offset for m in messages] for p, messages in admitted.items()}


def test_queued_fetches_of_a_revoked_partition_make_no_hole_and_no_refetch() -> None:
    seeks: list[tuple[int, int]] = []

    async def scenario() -> tuple[list[Inbound], list[Inbound]]:
        feed, step = FetchFeed(), delivery(seeks, {0: 0})
        await step.rebalanced({0, 1})
        # Partition 1's fetches have a gap (5-7 were fetched while it was paused), then the
        # rebalance moves partition 1 away; a batch being gathered already holds its first.
        await feed.put({**fetch(0, range(3)), **fetch(1, range(5))})
        gathered = await feed.batch(max_events=100, within_s=0.0, idle_s=5.0)
        await feed.put(fetch(1, range(8, 10)))
        await feed.put(fetch(0, range(3, 5)))
        feed.retain({0})
        await step.rebalanced({0})
        admitted = []
        for batch in (gathered, await feed.batch(max_events=100, within_s=0.0, idle_s=5.0)):
            for messages in (await step.admit(batch)).values():
                admitted += messages
        await step.refetch()
        return gathered, admitted

    gathered, admitted = asyncio.run(scenario())
    assert {m.partition for m in gathered} == {0, 1}
    assert [(m.partition, m.offset) for m in admitted] == [(0, o) for o in range(5)]
    assert seeks == []


def test_revoked_messages_are_dropped_even_if_still_in_a_batch() -> None:
    seeks: list[tuple[int, int]] = []

    async def scenario() -> tuple[BatchDelivery, dict[int, list[Inbound]]]:
        step = delivery(seeks, {0: 0})
        await step.rebalanced({0})
        messages = [Inbound(b"", "ev", 1, o) for o in (0, 1, 5)]
        messages += [Inbound(b"", "ev", 0, o) for o in (0, 1)]
        admitted = await step.admit(messages)
        await step.refetch()
        return step, admitted

    step, admitted = asyncio.run(scenario())
    assert offsets(admitted) == {0: [0, 1]}
    assert step.holes == {} and seeks == []
    assert 1 not in step.offsets.next_offset


def test_an_owned_partition_is_admitted_before_its_producer_runs_and_its_hole_refetched() -> None:
    seeks: list[tuple[int, int]] = []

    async def scenario() -> tuple[BatchDelivery, dict[int, list[Inbound]]]:
        step = delivery(seeks, {2: 10}, starting=True)
        await step.rebalanced({2})  # its producer is not up yet
        messages = [Inbound(b"", "ev", 2, o) for o in (10, 11, 14)]
        return step, await step.admit(messages)

    step, admitted = asyncio.run(scenario())
    assert offsets(admitted) == {2: [10, 11]}
    assert step.holes == {2: 12} and seeks == [(2, 12)]
