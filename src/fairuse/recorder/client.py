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

With ``spool_dir`` the client spools instead: ``send`` returns once the record is written to the
local spool (:mod:`fairuse.recorder.spool`), a background task delivers the spool to Kafka and
retries through broker outages, and a restarted client resumes from what is left in the spool.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from fairuse.errors import BrokerError
from fairuse.events import Event, encode_event, event_key
from fairuse.kafka import client_kwargs
from fairuse.recorder.forwarder import SpoolForwarder
from fairuse.recorder.spool import Spool, SpoolFullError, SpoolOptions
from fairuse.settings import KafkaSettings

__all__ = [
    "ProducerTuning",
    "RecorderClient",
    "SpoolFullError",
    "SpoolOptions",
    "abandon",
    "producer_config",
]

_SPOOL_CHUNK_RECORDS = 1000  # records spooled per write by send_many*
_SPOOL_CHUNK_BYTES = 1024 * 1024

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


async def abandon(producer: AIOKafkaProducer, error: BaseException) -> None:
    """Stop ``producer`` without delivering the batches it still holds: they fail with ``error``.

    The idempotent producer never expires a batch (it retries until the broker takes it) and
    ``stop()`` waits for every one. aiokafka has no public abort, so: stop its sender task (as
    ``stop()`` does; requests in flight finish), fail what is left in the accumulator (as aiokafka
    does itself when the sender dies), then ``stop()``, which has nothing left to wait for.
    """
    if producer._sender is not None:
        await producer._sender.close()
    producer._message_accumulator.fail_all(error)
    await producer.stop()


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
    """Sends events to the events topic; use as ``async with`` (or ``start()``/``close()``).

    ``spool_dir`` turns the durable spool on (``spool`` sets its options): see the module doc.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        tuning: ProducerTuning | None = None,
        *,
        producer: AIOKafkaProducer | None = None,
        spool_dir: Path | str | None = None,
        spool: SpoolOptions | None = None,
    ) -> None:
        self.settings = settings
        self.tuning = tuning or ProducerTuning()
        self.topic = settings.topic("events")
        self._producer = producer
        self._room: asyncio.Semaphore | None = None
        self._error: BaseException | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._partitioner = DefaultPartitioner()
        self.spool_dir = Path(spool_dir) if spool_dir is not None else None
        self.spool_options = spool or SpoolOptions()
        self.spool: Spool | None = None
        self._forwarder: SpoolForwarder | None = None
        self.sent = 0
        self._delivered_count = 0
        self._failed_count = 0

    @property
    def delivered(self) -> int:
        """Records acknowledged by the broker (with a spool: delivered from the spool)."""
        return self._forwarder.delivered if self._forwarder else self._delivered_count

    @property
    def failed(self) -> int:
        """Records not delivered (with a spool: failed attempts, retried from the spool)."""
        return self._forwarder.failed if self._forwarder else self._failed_count

    @property
    def spooled_bytes(self) -> int:
        """Bytes spooled and not yet acknowledged (0 without a spool)."""
        return self.spool.pending_bytes if self.spool else 0

    @property
    def oldest_spooled_age_s(self) -> float:
        """Age of the oldest spooled, unacknowledged record in seconds (0.0 when none)."""
        return self.spool.oldest_age_s() if self.spool else 0.0

    async def start(self) -> None:
        """Connect; raise BrokerError if the cluster cannot be reached or the topic is missing.

        With a spool: open it (keeping what a previous run left) and start delivering; the broker
        may be unreachable, delivery retries until it answers.
        """
        if self.spool_dir is not None:
            if self.spool is None:
                self.spool = Spool.open(self.spool_dir, self.spool_options)
                self._forwarder = SpoolForwarder(
                    self.spool,
                    lambda: RecorderClient(self.settings, self.tuning),
                    settings=self.settings,
                )
                self._forwarder.start()
            return
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
        """Queue ``event`` (encoded, keyed by tenant id); waits while ``max_in_flight`` are out.

        With a spool: returns once the event is written to the spool (see ``SpoolOptions.fsync``);
        waits while the spool is full, or raises SpoolFullError with ``when_full="raise"``.
        """
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
        if self.spool_dir is not None:
            await self._spool_many(records)
            return
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
            self._failed_count += size
            raise BrokerError(f"recorder client could not queue a batch: {exc!r}") from exc
        self.sent += size
        self._pending.add(delivery)
        delivery.add_done_callback(functools.partial(self._delivered, records=size))

    async def send_raw(self, key: bytes, payload: bytes) -> None:
        """Queue an already encoded payload under ``key`` (simulators and replays use this)."""
        if self.spool_dir is not None:
            await self._spool_chunk([(key, payload)], len(key) + len(payload))
            return
        self._raise_failure()
        room, producer = self._started()
        await room.acquire()
        try:
            delivery = await producer.send(self.topic, payload, key=key)
        except (KafkaError, OSError) as exc:
            room.release()
            self._failed_count += 1
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
            self._failed_count += records
            self._error = self._error or asyncio.CancelledError("delivery cancelled")
        elif delivery.exception() is not None:
            self._failed_count += records
            self._error = self._error or delivery.exception()
        else:
            self._delivered_count += records

    async def _spool_many(self, records: Iterable[tuple[bytes, bytes]]) -> None:
        chunk: list[tuple[bytes, bytes]] = []
        size = 0
        for key, payload in records:
            chunk.append((key, payload))
            size += len(key) + len(payload)
            if len(chunk) >= _SPOOL_CHUNK_RECORDS or size >= _SPOOL_CHUNK_BYTES:
                await self._spool_chunk(chunk, size)
                chunk, size = [], 0
        if chunk:
            await self._spool_chunk(chunk, size)

    async def _spool_chunk(self, chunk: list[tuple[bytes, bytes]], size: int) -> None:
        spool, forwarder = self._spooling()
        if not spool.fits(size):
            if self.spool_options.when_full == "raise":
                raise SpoolFullError(
                    f"spool {spool.directory} is full ({spool.pending_bytes} of "
                    f"{self.spool_options.max_bytes} bytes undelivered); {self.sent} records "
                    "spooled so far, the rest not"
                )
            await forwarder.wait_until(lambda: spool.fits(size))
        spool.append(chunk)
        self.sent += len(chunk)
        forwarder.wake()

    def _spooling(self) -> tuple[Spool, SpoolForwarder]:
        if self.spool is None or self._forwarder is None:
            raise BrokerError("recorder client is not started (use 'async with' or start())")
        return self.spool, self._forwarder

    async def flush(self) -> None:
        """Wait until every queued record is acknowledged; raise BrokerError if any failed.

        With a spool: wait until the spool is delivered (through outages; never raises for them).
        """
        if self.spool_dir is not None:
            spool, forwarder = self._spooling()
            forwarder.wake()
            await forwarder.wait_until(lambda: spool.pending_bytes == 0)
            return
        _room, producer = self._started()
        try:
            await producer.flush()
            if self._pending:
                await asyncio.wait(set(self._pending))
        except (KafkaError, OSError) as exc:
            raise BrokerError(f"recorder client flush failed: {exc!r}") from exc
        self._raise_failure()

    async def close(self, flush: bool = True) -> None:
        """Flush (unless ``flush=False``) and disconnect; a delivery failure still raises.

        With a spool and ``flush=False``, undelivered records stay in the spool for the next start.
        """
        if self.spool is not None and self._forwarder is not None:
            try:
                if flush:
                    await self.flush()
            finally:
                await self._forwarder.stop()
                self.spool.close()
                self.spool = None
            return
        if self._producer is None:
            return
        try:
            if flush and self._room is not None:
                await self.flush()
        finally:
            await self._producer.stop()
            self._producer = None
            self._room = None

    async def abort(self) -> None:
        """Disconnect at once: records not yet acknowledged fail and are never delivered."""
        if self._producer is None:
            return
        try:
            await abandon(self._producer, BrokerError("recorder client aborted"))
        finally:
            self._producer = None
            self._room = None
            self._error = None

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
