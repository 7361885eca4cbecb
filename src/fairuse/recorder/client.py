"""The recorder client: an aiokafka producer wrapper the recorder fleet embeds.

    async with RecorderClient(load_settings().kafka) as client:
        await client.send(event)        # returns once the record is queued, not delivered
    # leaving the block flushes: every queued record is acknowledged by all in-sync replicas

Records go to ``settings.topic("events")`` keyed by tenant id (so a tenant's events stay in
order on one partition), with ``acks="all"``, the idempotent producer (no duplicates or reordering
on retries), lz4 compression and linger/batch sizes for throughput. At most ``max_in_flight``
records are queued or unacknowledged at once: ``send`` waits for room (backpressure) rather than
buffering without bound. A failed delivery is never swallowed: the next ``send``, ``flush`` or
the exit of the ``async with`` block raises :class:`~fairuse.errors.BrokerError`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from fairuse.errors import BrokerError
from fairuse.events import Event, encode_event, event_key
from fairuse.kafka import client_kwargs
from fairuse.settings import KafkaSettings

__all__ = ["ProducerTuning", "RecorderClient", "producer_config"]

Compression = Literal["lz4", "zstd", "gzip", "snappy"] | None


@dataclass(frozen=True, slots=True)
class ProducerTuning:
    """Throughput knobs of the recorder's producer (defaults measured by ``bench/producer.py``)."""

    compression: Compression = "lz4"
    linger_ms: int = 20
    max_batch_bytes: int = 512 * 1024
    max_in_flight: int = 50_000
    request_timeout_ms: int = 30_000
    client_id: str = "fairuse-recorder"


def producer_config(settings: KafkaSettings, tuning: ProducerTuning) -> dict[str, Any]:
    """The keyword arguments of the recorder's ``AIOKafkaProducer``."""
    return {
        **client_kwargs(settings),
        "client_id": tuning.client_id,
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": tuning.compression,
        "linger_ms": tuning.linger_ms,
        "max_batch_size": tuning.max_batch_bytes,
        "request_timeout_ms": tuning.request_timeout_ms,
    }


class RecorderClient:
    """Sends events to the events topic; use as ``async with`` (or ``start()``/``close()``)."""

    def __init__(
        self,
        settings: KafkaSettings,
        tuning: ProducerTuning | None = None,
        *,
        producer: AIOKafkaProducer | None = None,
    ) -> None:
        self.settings = settings
        self.tuning = tuning or ProducerTuning()
        self.topic = settings.topic("events")
        self._producer = producer
        self._room: asyncio.Semaphore | None = None
        self._error: BaseException | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._partitioner = DefaultPartitioner()
        self.sent = 0
        self.delivered = 0
        self.failed = 0

    async def start(self) -> None:
        """Connect; raise BrokerError if the cluster cannot be reached or the topic is missing."""
        self._room = asyncio.Semaphore(self.tuning.max_in_flight)
        if self._producer is None:
            self._producer = AIOKafkaProducer(**producer_config(self.settings, self.tuning))
        try:
            await self._producer.start()
            cluster = await self._producer.client.fetch_all_metadata()
        except (KafkaError, OSError) as exc:
            await self._producer.stop()
            self._producer = None
            raise BrokerError(
                f"recorder client cannot connect to Kafka at {self.settings.bootstrap}: {exc!r}"
            ) from exc
        if self.topic not in cluster.topics():
            await self._producer.stop()
            self._producer = None
            raise BrokerError(f"topic {self.topic} does not exist (run 'fairuse topics create')")

    async def __aenter__(self) -> RecorderClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close(flush=exc_type is None)

    async def send(self, event: Event) -> None:
        """Queue ``event`` (encoded, keyed by tenant id); waits while ``max_in_flight`` are out."""
        await self.send_raw(event_key(event), encode_event(event))

    async def send_many(self, events: Iterable[Event]) -> None:
        """Queue many events in order, as whole batches (see :meth:`send_many_raw`)."""
        await self.send_many_raw((event_key(event), encode_event(event)) for event in events)

    async def send_many_raw(self, records: Iterable[tuple[bytes, bytes]]) -> None:
        """Queue many ``(key, payload)`` records, building one batch per partition.

        Several times faster than one :meth:`send_raw` per record; the partition of a key is the
        one :meth:`send_raw` would pick, so a tenant's order holds across both. Returns once the
        last batch is queued; :meth:`flush` waits for delivery.
        """
        self._raise_failure()
        room, producer = self._started()
        try:
            partitions = sorted(await producer.partitions_for(self.topic))
        except (KafkaError, OSError) as exc:
            raise BrokerError(f"no partitions for {self.topic}: {exc!r}") from exc
        open_batches: dict[int, tuple[BatchBuilder, int]] = {}
        try:
            for key, payload in records:
                if room.locked():  # out of room: queue what is built, then wait for deliveries
                    await self._send_batches(open_batches)
                await room.acquire()
                partition = self._partitioner(key, partitions, partitions)
                builder, size = open_batches.pop(partition, None) or (producer.create_batch(), 0)
                if builder.append(key=key, value=payload, timestamp=None) is None:
                    await self._send_batch(builder, partition, size)  # full: queue it
                    builder, size = producer.create_batch(), 0
                    if builder.append(key=key, value=payload, timestamp=None) is None:
                        room.release()
                        raise BrokerError(f"a record of {len(payload)} bytes does not fit a batch")
                open_batches[partition] = (builder, size + 1)
            await self._send_batches(open_batches)
        finally:
            for _builder, size in open_batches.values():  # not queued: give their room back
                for _ in range(size):
                    room.release()

    async def _send_batches(self, open_batches: dict[int, tuple[BatchBuilder, int]]) -> None:
        while open_batches:
            partition = next(iter(open_batches))
            builder, size = open_batches.pop(partition)
            await self._send_batch(builder, partition, size)

    async def _send_batch(self, builder: BatchBuilder, partition: int, size: int) -> None:
        room, producer = self._started()
        builder.close()
        try:
            delivery = await producer.send_batch(builder, self.topic, partition=partition)
        except (KafkaError, OSError) as exc:
            for _ in range(size):
                room.release()
            self.failed += size
            raise BrokerError(f"recorder client could not queue a batch: {exc!r}") from exc
        self.sent += size
        self._pending.add(delivery)
        delivery.add_done_callback(functools.partial(self._delivered, records=size))

    async def send_raw(self, key: bytes, payload: bytes) -> None:
        """Queue an already encoded payload under ``key`` (simulators and replays use this)."""
        self._raise_failure()
        room, producer = self._started()
        await room.acquire()
        try:
            delivery = await producer.send(self.topic, payload, key=key)
        except (KafkaError, OSError) as exc:
            room.release()
            self.failed += 1
            raise BrokerError(f"recorder client could not queue a record: {exc!r}") from exc
        except BaseException:
            room.release()
            raise
        self.sent += 1
        self._pending.add(delivery)
        delivery.add_done_callback(self._delivered)

    def _delivered(self, delivery: asyncio.Future[Any], records: int = 1) -> None:
        self._pending.discard(delivery)
        if self._room is not None:
            for _ in range(records):
                self._room.release()
        if delivery.cancelled():
            self.failed += records
            self._error = self._error or asyncio.CancelledError("delivery cancelled")
        elif delivery.exception() is not None:
            self.failed += records
            self._error = self._error or delivery.exception()
        else:
            self.delivered += records

    async def flush(self) -> None:
        """Wait until every queued record is acknowledged; raise BrokerError if any failed."""
        _room, producer = self._started()
        try:
            await producer.flush()
            if self._pending:
                await asyncio.wait(set(self._pending))
        except (KafkaError, OSError) as exc:
            raise BrokerError(f"recorder client flush failed: {exc!r}") from exc
        self._raise_failure()

    async def close(self, flush: bool = True) -> None:
        """Flush (unless ``flush=False``) and disconnect; a delivery failure still raises."""
        if self._producer is None:
            return
        try:
            if flush and self._room is not None:
                await self.flush()
        finally:
            await self._producer.stop()
            self._producer = None
            self._room = None

    def _started(self) -> tuple[asyncio.Semaphore, AIOKafkaProducer]:
        if self._producer is None or self._room is None:
            raise BrokerError("recorder client is not started (use 'async with' or start())")
        return self._room, self._producer

    def _raise_failure(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise BrokerError(
                f"{self.failed} record(s) not delivered to {self.topic}: {error!r}"
            ) from error
