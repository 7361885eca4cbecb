"""Faust's aiokafka transport with correct highwaters for ``read_committed`` recovery.

With ``processing_guarantee="exactly_once"`` Faust's consumer reads ``read_committed`` and takes
a changelog partition's highwater from ``last_stable_offset``, which aiokafka only knows after
a fetch of that partition. Table recovery asks right after an assignment, before any fetch,
gets None (-1), and so skips the recovery of a partition that has data. This transport asks the
broker instead (ListOffsets at the consumer's isolation level, which for ``read_committed`` is
the last stable offset). Registered as the ``fairuse`` scheme through Faust's documented
``faust.transports`` entry point (pyproject.toml); the worker's broker URLs use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from faust.transport.drivers import aiokafka as driver
from faust.types import TP


class ConsumerThread(driver.AIOKafkaConsumerThread):
    """Highwaters from the broker's end offsets, never from the last fetch."""

    async def _highwaters(self, partitions: Iterable[TP]) -> Mapping[TP, int]:  # type: ignore[override]
        consumer = self._ensure_consumer()
        return await consumer.end_offsets(list(partitions))


class Consumer(driver.Consumer):
    """Faust's aiokafka consumer on :class:`ConsumerThread`."""

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    """Faust's aiokafka transport with :class:`Consumer`."""

    Consumer: ClassVar[Any] = Consumer
