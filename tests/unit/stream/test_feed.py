"""FetchFeed: whole fetches in, batches out, in arrival order; bounded by size and time."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fairuse.stream.core import Inbound
from fairuse.stream.feed import FetchFeed


@dataclass(frozen=True)
class Record:
    """The fields of an aiokafka ConsumerRecord the feed reads."""

    topic: str
    partition: int
    offset: int
    value: bytes


def fetch(partition: int, offsets: range) -> dict[int, list[Record]]:
    return {partition: [Record("ev", partition, o, b"%d" % o) for o in offsets]}


def offsets(batch: list[Inbound]) -> list[tuple[int, int]]:
    return [(m.partition, m.offset) for m in batch]


def test_fetches_are_joined_into_one_batch_in_arrival_order() -> None:
    async def scenario() -> list[Inbound]:
        feed = FetchFeed()
        await feed.put({**fetch(0, range(3)), **fetch(1, range(2))})
        await feed.put(fetch(0, range(3, 5)))
        return await feed.batch(max_events=100, within_s=0.0, idle_s=5.0)

    batch = asyncio.run(scenario())
    assert offsets(batch) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (0, 3), (0, 4)]
    assert batch[0] == Inbound(b"0", "ev", 0, 0)


def test_a_full_batch_keeps_the_rest_of_a_fetch_for_the_next() -> None:
    async def scenario() -> tuple[list[Inbound], list[Inbound]]:
        feed = FetchFeed()
        await feed.put(fetch(0, range(5)))
        await feed.put(fetch(0, range(5, 8)))
        first = await feed.batch(max_events=4, within_s=60.0, idle_s=5.0)
        second = await feed.batch(max_events=100, within_s=0.0, idle_s=5.0)
        return first, second

    first, second = asyncio.run(scenario())
    assert [m.offset for m in first] == [0, 1, 2, 3]
    assert [m.offset for m in second] == [4, 5, 6, 7]


def test_a_batch_waits_for_a_later_fetch_until_it_is_full() -> None:
    async def scenario() -> list[Inbound]:
        feed = FetchFeed()

        async def later() -> None:
            await asyncio.sleep(0)
            await feed.put(fetch(1, range(2)))

        await feed.put(fetch(0, range(2)))
        producer = asyncio.create_task(later())
        batch = await feed.batch(max_events=4, within_s=600.0, idle_s=5.0)
        await producer
        return batch

    assert offsets(asyncio.run(scenario())) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_an_idle_feed_gives_an_empty_batch() -> None:
    batch = asyncio.run(FetchFeed().batch(max_events=4, within_s=0.0, idle_s=0.01))
    assert batch == []


def test_retain_drops_the_other_partitions_queued_and_pending_and_frees_room() -> None:
    async def scenario() -> tuple[list[Inbound], list[Inbound]]:
        feed = FetchFeed(fetches=2)
        await feed.put({**fetch(0, range(6)), **fetch(1, range(2))})
        first = await feed.batch(max_events=4, within_s=0.0, idle_s=5.0)  # rest pending
        await feed.put(fetch(1, range(2, 4)))
        await feed.put(fetch(0, range(6, 8)))  # the queue is full
        feed.retain({0})
        await asyncio.wait_for(feed.put(fetch(0, range(8, 9))), 60)  # room again
        return first, await feed.batch(max_events=100, within_s=0.0, idle_s=5.0)

    first, rest = asyncio.run(scenario())
    assert offsets(first) == [(0, 0), (0, 1), (0, 2), (0, 3)]
    assert offsets(rest) == [(0, 4), (0, 5), (0, 6), (0, 7), (0, 8)]
