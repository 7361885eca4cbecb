"""Each batch of one events partition is one Kafka transaction: outputs, state, offsets.

:class:`PartitionProducers` keeps one aiokafka transactional producer per events partition this
worker owns, with the transactional id ``<app_id>.events-<partition>``. Whoever owns a partition
next starts a producer with the same id; the broker then aborts the previous owner's open
transaction and fences its producer (``ProducerFenced`` on its next step), so a zombie (a worker
paused past its session timeout) can never commit after the new owner took over.

:class:`BatchDelivery` owns a batch's sequence, one method per step (easy to instrument):
:meth:`~BatchDelivery.admit` (continuing runs of offsets), :meth:`~BatchDelivery.process` (the
pure core, per partition), :meth:`~BatchDelivery.commit` (one transaction per partition:
outputs, the state writes to the table's changelog with their explicit partition, the
partition's next offset to the positions changelog, and the consumed offset of the group) and
:meth:`~BatchDelivery.apply` (the committed writes into the local store). Pipelined: a
batch's commit and apply run in the background while the next batch is admitted and processed
(:meth:`~BatchDelivery.run`, :meth:`~BatchDelivery.settle`). If a transaction fails nothing of
it is visible to ``read_committed`` readers: the core discards its decoded state (and the
batch processed on top of it) and the partition is fetched again from its last committed
position.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import IllegalStateError, ProducerFenced
from aiokafka.partitioner import DefaultPartitioner
from faust.types import TP, Message

from fairuse.kafka import client_kwargs
from fairuse.settings import KafkaSettings
from fairuse.stream.core import Inbound, Outbound, StateWrite, StreamCore
from fairuse.stream.offsets import OffsetTracker

log = logging.getLogger(__name__)

_PARTITIONER = DefaultPartitioner()

BATCH_BYTES = 512 * 1024
"""Bytes of records per produce batch (one larger record goes alone): below the brokers'
default ``message.max.bytes`` of the output topics."""

YIELD_EVERY = 256
"""Events processed between two yields to the event loop: the transactions in flight, the
fetcher's hand-over and the web server go on while a large batch is processed."""

RETRY_BACKOFF_MS = 20
"""Wait before a producer retries. A batch's produce to a partition often reaches the broker
before the previous transaction's commit marker is written there, and the broker's transaction
verification (KIP-890) answers with a retriable error: aiokafka's default of 100 ms then
delays every such batch, and the batches queued behind it."""

SEEK_INTERVAL_S = 2.0
"""Least time between two seeks of one partition (see :meth:`BatchDelivery.admit`)."""


class ChangelogTable(Protocol):
    """What the worker needs of a Faust table: its changelog topic and a way to apply records
    (``Collection.apply_changelog_batch``, the path of Faust's own recovery)."""

    def apply_changelog_batch(self, batch: Iterable[Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class Applied:
    """A committed changelog record in the shape Faust's stores apply (``event.message``)."""

    key: str
    value: bytes | None
    message: Message


def changelog_key(key: str) -> bytes:
    """A table key as Faust's tables write it to their changelog (JSON, as for every
    ``key_type=str`` table; earlier versions' changelogs have the same keys). Faust's json
    codec is orjson's ``dumps``; called directly, without the codec lookup (a tenth of the
    cost)."""
    return orjson.dumps(key)


def applied(topic: str, write: StateWrite, offset: int) -> Applied:
    """``write``, committed at ``offset`` of ``topic``, ready for ``apply_changelog_batch``."""
    tp = TP(topic, write.partition)
    key = changelog_key(write.key)
    message = Message(topic, write.partition, offset, 0.0, 0, None, key, write.value, None, tp=tp)
    return Applied(write.key, write.value, message)


@dataclass(slots=True)
class PartitionBatch:
    """What one events partition's part of a batch makes durable, in one transaction."""

    partition: int
    outputs: list[Outbound] = field(default_factory=list)
    writes: list[StateWrite] = field(default_factory=list)
    next_offset: int = 0
    messages: list[Inbound] = field(default_factory=list)
    skipped: int = 0  # events at or below the tenant's applied offset (processed before)
    committed: bool = False


class BatchObserver(Protocol):
    """Told about each committed part of a batch, before its writes reach the local store
    (the worker's metrics, ``stream/health.py``)."""

    def committed(
        self, parts: Sequence[PartitionBatch], applied: Sequence[Applied], duration_s: float
    ) -> None: ...


class NotOwned(Exception):
    """The partition's producer is gone (not owned or fenced): its batch is not committed."""


class PartitionProducers:
    """One transactional producer per owned events partition (see the module docstring)."""

    def __init__(
        self, kafka: KafkaSettings, app_id: str, linger_ms: int, max_record_bytes: int
    ) -> None:
        self.kafka = kafka
        self.app_id = app_id
        self.linger_ms = linger_ms
        self.max_record_bytes = max_record_bytes
        self.producers: dict[int, AIOKafkaProducer] = {}
        self.fenced: set[int] = set()

    def transactional_id(self, partition: int) -> str:
        """The id every owner of ``partition`` uses, so the next owner fences the previous."""
        return f"{self.app_id}.events-{partition}"

    async def assign(self, partitions: set[int]) -> None:
        """Own exactly ``partitions``: stop the others' producers, start (and so fence any
        previous owner of) the new ones'."""
        for partition in sorted(set(self.producers) - partitions):
            await self._stop(partition)
        new = sorted(partitions - set(self.producers))
        await asyncio.gather(*(self._start(p) for p in new))

    async def _start(self, partition: int) -> None:
        producer = AIOKafkaProducer(
            transactional_id=self.transactional_id(partition),
            enable_idempotence=True,
            acks="all",
            linger_ms=self.linger_ms,
            max_batch_size=BATCH_BYTES,
            max_request_size=self.max_record_bytes,
            retry_backoff_ms=RETRY_BACKOFF_MS,
            **client_kwargs(self.kafka),
        )
        await producer.start()  # InitProducerId: aborts and fences the previous owner's epoch
        self.producers[partition] = producer
        self.fenced.discard(partition)

    async def _stop(self, partition: int) -> None:
        producer = self.producers.pop(partition, None)
        if producer is not None:
            try:
                await producer.stop()
            except Exception as exc:  # a fenced producer may fail to stop cleanly
                log.warning("stopping the producer of partition %d: %r", partition, exc)

    async def close(self) -> None:
        """Stop every producer."""
        await self.assign(set())

    def get(self, partition: int) -> AIOKafkaProducer | None:
        """The partition's producer, or None if not owned (or fenced)."""
        return None if partition in self.fenced else self.producers.get(partition)

    async def fence(self, partition: int) -> None:
        """Another worker took ``partition`` over: drop its producer until reassigned."""
        self.fenced.add(partition)
        await self._stop(partition)


@dataclass
class BatchDelivery:
    """The batch step of the worker: admit, process, commit (transactions), apply."""

    core: StreamCore
    producers: PartitionProducers
    events_topic: str
    group_id: str
    tenants: ChangelogTable
    tenants_changelog: str
    positions: ChangelogTable
    positions_changelog: str
    seek: Callable[[int, int], Awaitable[None]]
    start_offsets: Callable[[], Awaitable[Mapping[int, int]]]
    offsets: OffsetTracker = field(default_factory=OffsetTracker)
    stale: bool = True
    generation: int = 0
    seeks: dict[int, float] = field(default_factory=dict)
    holes: dict[int, int] = field(default_factory=dict)
    owned: set[int] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    observer: BatchObserver | None = None
    inflight: asyncio.Task[bool] | None = None  # the previous batch's transactions

    async def rebalanced(self, owned: set[int]) -> None:
        """Partitions moved: wait for the batch in flight, forget decoded state and offsets,
        and own exactly ``owned`` (starting their producers fences any previous owner)."""
        async with self.lock:
            await self.settle()
            self.generation += 1
            self.owned = set(owned)
            self.holes.clear()
            self.seeks.clear()
            self.core.discard()
            self.stale = True
            await self.producers.assign(owned)

    async def run(self, messages: Sequence[Inbound], generation: int) -> int:
        """Process one batch and start making it durable; return the events processed.

        Pipelined: the batch is processed while the previous batch's transactions are in
        flight (its state writes are read from :meth:`StreamCore.hold` until applied); its
        own transactions start once the previous batch's have committed, and run in the
        background (:attr:`inflight`) while the next batch is processed. If any of the
        previous batch's transactions failed, this batch was built on state that is not
        durable: it is dropped, and its partitions are fetched again from the committed
        position. A partition's transactions so stay one after another, each with its
        offsets. Messages gathered before the latest rebalance (``generation``) are dropped
        too. Holds :attr:`lock`, which a rebalance waits for (and settles the batch in
        flight)."""
        async with self.lock:
            if generation != self.generation:
                return 0
            started_s = time.perf_counter()
            admitted = await self.admit(messages)
            parts = await self.process(admitted)
            if not await self.settle():  # this batch was processed on top of a failed one
                return 0
            if parts:
                self.inflight = asyncio.create_task(self._deliver(parts, started_s))
            return sum(len(m) for m in admitted.values())

    async def settle(self) -> bool:
        """Wait for the transactions in flight (and their writes applied to the store);
        False if any of them failed: then the decoded state is discarded and each partition
        is fetched again from its last committed position (the next batch starts there)."""
        inflight, self.inflight = self.inflight, None
        if inflight is None or await inflight:
            return True
        self._drop()
        return False

    def _drop(self) -> None:
        self.core.discard()
        self.stale = True

    async def _deliver(self, parts: Sequence[PartitionBatch], started_s: float) -> bool:
        committed = await self.commit(parts)
        self._observe(parts, committed, started_s)
        self.apply(committed)
        return all(part.committed for part in parts)

    async def admit(self, messages: Sequence[Inbound]) -> dict[int, list[Inbound]]:
        """Per owned partition, the messages that continue its run of offsets; a partition
        with a hole is fetched again from its next offset (``offsets.py``). Messages of
        partitions this worker does not own (fetched before a rebalance moved them) are
        dropped before any bookkeeping, so they never make a hole to re-fetch. A fenced
        partition leaves :attr:`owned` until the next rebalance."""
        if self.stale:
            self.stale = False
            self.offsets.reset(await self.start_offsets())
        result = self.offsets.admit(m for m in messages if m.partition in self.owned)
        self.holes.update(result.seek)
        for partition, offset in list(self.holes.items()):
            if self.offsets.next_offset.get(partition, offset) > offset:
                del self.holes[partition]  # the re-fetched messages arrived
        await self.refetch()
        by_partition: dict[int, list[Inbound]] = {}
        for message in result.messages:
            by_partition.setdefault(message.partition, []).append(message)
        return by_partition

    async def refetch(self) -> None:
        """Seek each partition with a hole back to its next offset. Messages fetched before a
        seek keep arriving for a while, and Faust drops the re-fetched ones below its read
        offset: so seek again (also when nothing arrives) until the hole is filled, at most
        every :data:`SEEK_INTERVAL_S`."""
        now = time.monotonic()
        for partition, offset in self.holes.items():
            if now - self.seeks.get(partition, -SEEK_INTERVAL_S) < SEEK_INTERVAL_S:
                continue
            self.seeks[partition] = now
            log.info("re-fetching %s/%d from offset %d", self.events_topic, partition, offset)
            try:
                await self.seek(partition, offset)
            except IllegalStateError:  # no longer assigned: the rebalance clears the hole
                log.info("partition %d no longer assigned", partition)

    async def process(self, admitted: Mapping[int, list[Inbound]]) -> list[PartitionBatch]:
        """Run the core over each partition's messages (yielding to the event loop every
        :data:`YIELD_EVERY` events); collect outputs and state writes, held by the core
        until applied."""
        next_offsets = self.offsets.committable(admitted)
        parts = []
        for partition, messages in admitted.items():
            part = PartitionBatch(partition, next_offset=next_offsets[partition])
            for start in range(0, len(messages), YIELD_EVERY):
                await asyncio.sleep(0)
                batch = self.core.process(messages[start : start + YIELD_EVERY])
                part.outputs += batch.outputs
                part.skipped += batch.skipped
            part.writes = self.core.commit()
            part.messages = messages
            self.core.hold(part.writes)
            parts.append(part)
        return parts

    async def commit(self, parts: Sequence[PartitionBatch]) -> list[Applied]:
        """Commit each partition's transaction (concurrently); return the committed writes
        (a part's ``committed`` tells whether it was; the caller handles a failure)."""
        results = await asyncio.gather(
            *(self._transaction(part) for part in parts), return_exceptions=True
        )
        committed: list[Applied] = []
        failed = None
        for part, result in zip(parts, results, strict=True):
            if isinstance(result, BaseException):
                failed = failed or result
                if isinstance(result, ProducerFenced):
                    log.warning(
                        "partition %d: producer fenced, a new owner took over", part.partition
                    )
                    await self.producers.fence(part.partition)
                    self.owned.discard(part.partition)  # until a rebalance gives it back
                    self.holes.pop(part.partition, None)
            else:
                part.committed = True
                committed += result
        if failed is not None and not isinstance(failed, ProducerFenced | NotOwned):
            log.warning("batch not committed (%r); re-fetching its partitions", failed)
        return committed

    async def expire(self, generation: int) -> None:
        """Close idle sessions of owned partitions, durably (outputs and state), unless a
        rebalance happened since ``generation``."""
        async with self.lock:
            await self.settle()
            if generation != self.generation:
                return
            started_s = time.perf_counter()
            batch = self.core.expire_idle(lambda p: self.producers.get(p) is not None)
            writes = self.core.commit()
            parts: dict[int, PartitionBatch] = {}
            for write in writes:
                parts.setdefault(write.partition, PartitionBatch(write.partition)).writes.append(
                    write
                )
            for out in batch.outputs:
                partition = self.core.partition_of(out.key.decode())
                if partition is not None:
                    parts.setdefault(partition, PartitionBatch(partition)).outputs.append(out)
            if not await self._deliver(list(parts.values()), started_s):
                self._drop()

    def _observe(
        self, parts: Sequence[PartitionBatch], committed: Sequence[Applied], started_s: float
    ) -> None:
        if self.observer is not None:
            duration_s = time.perf_counter() - started_s
            self.observer.committed([p for p in parts if p.committed], committed, duration_s)

    def apply(self, committed: Sequence[Applied]) -> None:
        """Apply committed changelog records to the local stores (tenants, positions)."""
        tenants = [a for a in committed if a.message.topic == self.tenants_changelog]
        positions = [a for a in committed if a.message.topic == self.positions_changelog]
        if tenants:
            self.tenants.apply_changelog_batch(tenants)
            self.core.release((a.key, a.value) for a in tenants)
        if positions:
            self.positions.apply_changelog_batch(positions)

    async def _transaction(self, part: PartitionBatch) -> list[Applied]:
        producer = self.producers.get(part.partition)
        if producer is None:
            raise NotOwned(part.partition)
        records = TransactionRecords(producer)
        for out in part.outputs:
            await records.add_output(out)
        for write in part.writes:
            records.add_write(self.tenants_changelog, write)
        if part.next_offset:  # the partition's position, with the state it describes
            position = str(part.next_offset).encode()
            records.add_write(
                self.positions_changelog,
                StateWrite(str(part.partition), position, part.partition),
            )
        async with producer.transaction():
            sent = await records.send()
            if part.next_offset:
                tp = TopicPartition(self.events_topic, part.partition)
                await producer.send_offsets_to_transaction({tp: part.next_offset}, self.group_id)
        return [
            applied(topic, write, (await future).offset + relative)
            for topic, future, writes in sent
            for write, relative in writes
        ]


_Pending = tuple[str, Any, list[tuple[StateWrite, int]]]
"""A sent batch: its topic, its future (the base offset), its state writes and their
relative offsets."""


class TransactionRecords:
    """A transaction's records grouped per topic partition into aiokafka record batches
    (``create_batch``/``send_batch``: one future per batch, no per-record metadata lookup,
    partitioning or future). Outputs go to the partition the producer's default partitioner
    gives their key; state writes to their explicit partition."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.groups: dict[tuple[str, int], list[tuple[bytes, bytes | None, StateWrite | None]]]
        self.groups = {}
        self.partitions: dict[str, list[int]] = {}

    async def add_output(self, out: Outbound) -> None:
        """Add an output record, partitioned by its key as ``producer.send`` would."""
        partitions = self.partitions.get(out.topic)
        if partitions is None:
            partitions = sorted(await self.producer.partitions_for(out.topic))
            self.partitions[out.topic] = partitions
        partition = _PARTITIONER(out.key, partitions, partitions)
        self.groups.setdefault((out.topic, partition), []).append((out.key, out.value, None))

    def add_write(self, topic: str, write: StateWrite) -> None:
        """Add a changelog record of ``topic``."""
        group = self.groups.setdefault((topic, write.partition), [])
        group.append((changelog_key(write.key), write.value, write))

    async def send(self) -> list[_Pending]:
        """Send every record (in a transaction); the batches sent, to resolve offsets."""
        sent: list[_Pending] = []
        for (topic, partition), records in self.groups.items():
            builder, writes = self.producer.create_batch(), []
            for key, value, write in records:
                metadata = builder.append(key=key, value=value, timestamp=None)
                if metadata is None:  # full: send it, start the next
                    sent.append((topic, await self._send(builder, topic, partition), writes))
                    builder, writes = self.producer.create_batch(), []
                    metadata = builder.append(key=key, value=value, timestamp=None)
                if write is not None:
                    writes.append((write, metadata.offset))
            sent.append((topic, await self._send(builder, topic, partition), writes))
        return sent

    async def _send(self, builder: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        future = await self.producer.send_batch(builder, topic, partition=partition)
        # A failed transaction's batches fail too, and nobody awaits them: their errors are
        # the transaction's, so mark them retrieved (no "never retrieved" log lines).
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        return future
