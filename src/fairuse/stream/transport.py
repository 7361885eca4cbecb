"""Faust's aiokafka transport with whole fetches for the worker and broker highwaters.

**Whole fetches.** Faust's fetcher hands each fetched record to the topic's channels one at a
time (``Consumer._drain_messages``: a ``Message``, two tasks and a queue put per record); for
the events topic that capped the worker at a few hundred events/s on a loaded machine. A topic
registered in :attr:`Transport.bulk` gets each fetch of its partitions whole instead, as
aiokafka's records per partition, from Faust's own fetcher: same group, assignment, flow
control (nothing is handed over while a rebalance stops the flow, and a hand-over waiting for
room is abandoned when one starts) and seeks. The worker registers the events topic
(``stream/feed.py``) and the tables' changelogs (``stream/recovery.py``: recovery and standbys
applied a fetch at a time); other topics go Faust's way.

**Highwaters.**
With ``processing_guarantee="exactly_once"`` Faust's consumer reads ``read_committed`` and takes
a changelog partition's highwater from ``last_stable_offset``, which aiokafka only knows after
a fetch of that partition. Table recovery asks right after an assignment, before any fetch,
gets None (-1), and so skips the recovery of a partition that has data. This transport asks the
broker instead (ListOffsets at the consumer's isolation level, which for ``read_committed`` is
the last stable offset).

**Owners before metadata.** Faust's router finds the worker owning a key by the producer's
partitioner, which fails with a ``TypeError`` while the producer has no metadata of the topic
(a worker's first moments): the HTTP API answered 500. :class:`Producer` fails as for a
partition with no owner yet (``KeyError``: the router answers 503) and asks for the metadata.

**Fetch wait.** aiokafka keeps one fetch request in flight per broker, and the request leaves
out the partitions whose records are still buffered. While busy partitions are being
processed, the request in flight holds only idle ones, and the broker keeps it open for up to
the fetch wait; the busy partitions are fetched again only after it returns. Faust fixes the
fetch wait at 1,500 ms, and at a steady rate the worker's events then arrived in bursts every
1.3-1.5 s. :attr:`Transport.fetch_max_wait_ms` (``FAIRUSE_WORKER_FETCH_MAX_WAIT_MS``) sets it.

Registered as the ``fairuse`` scheme through Faust's documented
``faust.transports`` entry point (pyproject.toml); the worker's broker URLs use it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, cast

from faust.transport.drivers import aiokafka as driver
from faust.types import TP

from fairuse.settings import WorkerSettings


class ConsumerThread(driver.AIOKafkaConsumerThread):
    """Highwaters from the broker's end offsets, never from the last fetch; the transport's
    fetch wait instead of Faust's fixed 1,500 ms."""

    def _create_worker_consumer(self, transport: driver.Transport) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by aiokafka when the consumer starts its fetcher; Faust passes no setting for it.
        consumer._fetch_max_wait_ms = cast("Transport", transport).fetch_max_wait_ms
        return consumer

    async def _highwaters(self, partitions: Iterable[TP]) -> Mapping[TP, int]:  # type: ignore[override]
        consumer = self._ensure_consumer()
        return await consumer.end_offsets(list(partitions))


BulkHandler = Callable[[Mapping[TP, Sequence[Any]]], Awaitable[None]]
"""Takes one fetch of a topic: aiokafka ``ConsumerRecord``s per partition, in offset order."""


class Consumer(driver.Consumer):
    """Faust's aiokafka consumer on :class:`ConsumerThread`, handing the fetches of the
    transport's bulk topics over whole."""

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _wait_next_records(  # type: ignore[override]
        self, timeout: float
    ) -> tuple[Mapping[TP, Sequence[Any]] | None, set[TP] | None]:
        records, active = await super()._wait_next_records(timeout)
        handlers = cast("Transport", self.transport).bulk
        if not records or not handlers or not self.flow_active:
            return records, active  # Faust's way (with the flow stopped: it seeks back)
        rest: dict[TP, Sequence[Any]] = {}
        bulk: dict[str, dict[TP, Sequence[Any]]] = {}
        for tp, found in records.items():
            if tp.topic not in handlers:
                rest[tp] = found
            elif active is None or tp in active or tp in self._buffered_partitions:
                bulk.setdefault(tp.topic, {})[tp] = found
        for topic, fetched in bulk.items():
            await self.wait_first(handlers[topic](fetched), self.suspend_flow.wait())
        return rest, active


class Producer(driver.Producer):
    """Faust's aiokafka producer whose key lookup fails with ``KeyError`` while the topic's
    partitions are not known yet, and asks for them."""

    def key_partition(self, topic: str, key: bytes) -> TP:
        client = self._ensure_producer().client
        if client.cluster.partitions_for_topic(topic) is None:
            client.add_topic(topic)  # fetched in the background: a retry finds the partitions
            raise KeyError(topic)
        return super().key_partition(topic, key)


class Transport(driver.Transport):
    """Faust's aiokafka transport with :class:`Consumer` and :class:`Producer`; :attr:`bulk`
    maps a topic name to the handler of its whole fetches, :attr:`fetch_max_wait_ms` is the
    longest time the broker holds a fetch open for data."""

    Consumer: ClassVar[Any] = Consumer
    Producer: ClassVar[Any] = Producer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bulk: dict[str, BulkHandler] = {}
        self.fetch_max_wait_ms = WorkerSettings().fetch_max_wait_ms  # the worker sets its own
