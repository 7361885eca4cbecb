"""Whole fetches of the events topic, gathered into the worker's batches.

Faust's fetcher hands records to channels one message at a time (two tasks and a queue put per
message), which under load fed the worker only a few hundred events/s and kept its batches,
and so its transactions, small. The worker's transport (``stream/transport.py``) instead gives
each fetch of the events topic whole to :meth:`FetchFeed.put`; the batch task takes batches
from :meth:`FetchFeed.batch`. A bounded queue of fetches between the two is the backpressure:
the fetcher waits while the worker is behind. At a rebalance :meth:`FetchFeed.retain` drops
what was fetched of the partitions this worker no longer owns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from fairuse.stream.core import Inbound


class FetchFeed:
    """Fetched events in arrival order (per partition, offset order), taken in batches."""

    def __init__(self, fetches: int = 4) -> None:
        self.queue: asyncio.Queue[list[Inbound]] = asyncio.Queue(maxsize=fetches)
        self.pending: list[Inbound] = []  # the rest of a fetch split by a full batch

    async def put(self, records: Mapping[Any, Sequence[Any]]) -> None:
        """Queue one fetch (aiokafka ``ConsumerRecord``s per partition); waits while full."""
        messages = [
            Inbound(r.value, r.topic, r.partition, r.offset)
            for partition_records in records.values()
            for r in partition_records
        ]
        if messages:
            await self.queue.put(messages)

    def retain(self, partitions: set[int]) -> None:
        """Drop the queued and pending messages of every partition not in ``partitions`` (a
        rebalance moved them away: their next owner fetches them from the committed position)."""
        self.pending = [m for m in self.pending if m.partition in partitions]
        kept = []
        while not self.queue.empty():
            fetched = [m for m in self.queue.get_nowait() if m.partition in partitions]
            if fetched:
                kept.append(fetched)
        for fetched in kept:  # no await since the gets: a waiting put cannot slip in between
            self.queue.put_nowait(fetched)

    async def batch(self, max_events: int, within_s: float, idle_s: float) -> list[Inbound]:
        """The next batch: at most ``max_events``, waiting up to ``idle_s`` for the first
        fetch and then up to ``within_s`` more to fill it (returning as soon as it is full).
        Empty if nothing arrived within ``idle_s``."""
        found, self.pending = self.pending, []
        if not found:
            try:
                found = await asyncio.wait_for(self.queue.get(), idle_s)
            except TimeoutError:
                return []
        deadline = time.monotonic() + within_s
        while len(found) < max_events:
            if self.queue.empty():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    found += await asyncio.wait_for(self.queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                found += self.queue.get_nowait()
        self.pending = found[max_events:]
        return found[:max_events]
