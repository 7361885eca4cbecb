"""``fairuse sink``: Kafka topics -> ClickHouse, exactly once.

Consumes ``events``, ``usage``, ``violations``, ``enforcement`` and ``dead-letter`` (group
``fairuse-sink``, no auto-commit), batches per topic-partition (:mod:`.batching`), inserts
column-oriented per table with a deduplication token derived from topic, partition and the
batch's first and last offsets, and commits offsets only after every insert of the flush
succeeded. A failing ClickHouse is retried with capped exponential backoff, never skipped.

Test hook: ``FAIRUSE_SINK_CRASH_AFTER_INSERT=1`` makes the process ``os._exit(70)`` right after
the first flush's inserts, before its offsets are committed (to test the exactly-once claim).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from fairuse.errors import BrokerError, WarehouseError
from fairuse.kafka import client_kwargs
from fairuse.settings import Settings
from fairuse.warehouse.batching import Batcher, PartitionBatch, decode_plan, encode_plan
from fairuse.warehouse.client import INSERT_SETTINGS, connect, embedded_path, is_embedded
from fairuse.warehouse.migrate import migrate
from fairuse.warehouse.owner import QueryOwner
from fairuse.warehouse.rows import TABLE_COLUMNS, TOPIC_TABLES, columns_of

log = logging.getLogger(__name__)

GROUP_ID = "fairuse-sink"
CRASH_HOOK_ENV = "FAIRUSE_SINK_CRASH_AFTER_INSERT"
CRASH_EXIT_CODE = 70

Sleep = Callable[[float], Awaitable[None]]


class Backoff:
    """Capped exponential delays: ``initial_s``, doubled per failure, at most ``max_s``."""

    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0) -> None:
        self.initial_s, self.max_s = initial_s, max_s
        self.delay_s = initial_s

    def next(self) -> float:
        """The delay before the next attempt (and double it for the one after)."""
        delay, self.delay_s = self.delay_s, min(self.delay_s * 2, self.max_s)
        return delay

    def reset(self) -> None:
        """Start again from ``initial_s`` after a success."""
        self.delay_s = self.initial_s


class BatchWriter:
    """Inserts batches into ClickHouse, retrying each insert until it succeeds."""

    def __init__(
        self, client: Any, *, sleep: Sleep = asyncio.sleep, backoff: Backoff | None = None
    ):
        self._client = client
        self._sleep = sleep
        self._backoff = backoff or Backoff()
        self.inserted_rows = 0
        self.failures = 0

    def _insert(self, table: str, columns: list[list[Any]], token: str) -> None:
        self._client.insert(
            table,
            columns,
            column_names=list(TABLE_COLUMNS[table]),
            column_oriented=True,
            settings={**INSERT_SETTINGS, "insert_deduplication_token": token},
        )

    async def write(self, batch: PartitionBatch) -> None:
        """Insert every table's rows of ``batch``; on failure back off and retry the same block."""
        for table, rows in sorted(batch.rows.items()):
            if not rows:
                continue
            columns, token = columns_of(rows), batch.token(table)
            while True:
                try:
                    await asyncio.to_thread(self._insert, table, columns, token)
                except Exception as exc:
                    self.failures += 1
                    delay = self._backoff.next()
                    log.warning(
                        "insert of %d rows into %s (token %s) failed, retrying in %.1fs: %s",
                        len(rows), table, token, delay, str(exc).strip().splitlines()[0][:300],
                    )  # fmt: skip
                    await self._sleep(delay)
                    continue
                self._backoff.reset()
                self.inserted_rows += len(rows)
                break


class _PlanListener(ConsumerRebalanceListener):
    """On assignment, read each partition's batch plan back from the group's commit metadata."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._sink.batcher.forget([(tp.topic, tp.partition) for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._sink.load_plans(list(assigned))


class Sink:
    """The consume -> batch -> insert -> commit loop."""

    def __init__(
        self,
        settings: Settings,
        client: Any,
        *,
        group_id: str = GROUP_ID,
        crash_after_insert: bool = False,
    ) -> None:
        kafka = settings.kafka
        self._settings = settings
        self.topic_tables = {kafka.topic(name): table for name, table in TOPIC_TABLES.items()}
        self.group_id = group_id
        self.batcher = Batcher(
            self.topic_tables, settings.warehouse.sink_batch_rows, settings.warehouse.sink_batch_ms
        )
        self.writer = BatchWriter(client)
        # Messages held while a flush runs before fetching pauses (bounds memory when ClickHouse
        # is slow or down): four full batches' worth.
        self._max_pending = 4 * settings.warehouse.sink_batch_rows
        self._crash_after_insert = crash_after_insert
        self._consumer: AIOKafkaConsumer | None = None
        self.committed_messages = 0

    async def load_plans(self, assigned: list[TopicPartition]) -> None:
        """Restore the batch plans of ``assigned`` partitions from their commit metadata."""
        if not assigned:
            return
        admin = AIOKafkaAdminClient(**client_kwargs(self._settings.kafka))
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(self.group_id, partitions=assigned)
        finally:
            await admin.close()
        for tp, meta in committed.items():
            lasts = decode_plan(meta.metadata) if meta is not None else []
            self.batcher.set_plan((tp.topic, tp.partition), lasts)
            if lasts:
                log.info(
                    "replaying %s-%d with planned batch ends %s", tp.topic, tp.partition, lasts
                )

    async def flush(self, batches: list[PartitionBatch]) -> None:
        """Insert ``batches`` and commit their offsets, in this order."""
        consumer = self._consumer
        assert consumer is not None
        by_tp: dict[TopicPartition, list[PartitionBatch]] = {}
        for batch in batches:
            by_tp.setdefault(TopicPartition(batch.topic, batch.partition), []).append(batch)
        # 1. Record the plan: each partition's batch ends go into the commit metadata while the
        #    committed offset stays at the first batch's start, so a crash replays the same cuts.
        await consumer.commit(
            {
                tp: OffsetAndMetadata(group[0].first, encode_plan([b.last for b in group]))
                for tp, group in by_tp.items()
            }
        )
        # 2. Insert every batch, table by table, each block with its deduplication token;
        #    retried until ClickHouse accepts it (a retry after a crash is dropped as duplicate).
        for batch in batches:
            await self.writer.write(batch)
        if self._crash_after_insert:
            log.warning("%s is set: exiting after the insert, before the commit", CRASH_HOOK_ENV)
            os._exit(CRASH_EXIT_CODE)
        # 3. Commit the offsets after the last batch of each partition, clearing the plan.
        await consumer.commit(
            {tp: OffsetAndMetadata(group[-1].last + 1, "") for tp, group in by_tp.items()}
        )
        # 4. Only now count the messages as stored.
        self.committed_messages += sum(b.count for b in batches)

    async def run(self, stop: asyncio.Event, idle_exit_s: float | None = None) -> None:
        """Consume until ``stop`` is set (or nothing arrived for ``idle_exit_s``), flush, return."""
        topics = sorted(self.topic_tables)
        self._consumer = consumer = AIOKafkaConsumer(
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            session_timeout_ms=10_000,
            max_poll_interval_ms=600_000,
            **client_kwargs(self._settings.kafka),
        )
        consumer.subscribe(topics, listener=_PlanListener(self))
        try:
            await consumer.start()
        except KafkaError as exc:
            raise BrokerError(
                f"sink cannot reach Kafka at {self._settings.kafka.bootstrap}: {exc}"
            ) from exc
        log.info("sink consuming %s as group %s", ", ".join(topics), self.group_id)
        last_message_s = time.monotonic()
        # A flush (insert + commit) runs as a task while the next messages are fetched and
        # decoded; one flush at a time, so a partition's batches are committed in order.
        flushing: asyncio.Task[bool] | None = None
        try:
            while not stop.is_set():
                if flushing is not None and flushing.done():
                    if not flushing.result():
                        await self._recover()
                    flushing = None
                if flushing is not None and self.batcher.pending >= self._max_pending:
                    await asyncio.wait([flushing])  # backpressure: ClickHouse is behind
                    continue
                fetched = await consumer.getmany(timeout_ms=100, max_records=10_000)
                now = time.monotonic()
                for tp, messages in fetched.items():
                    last_message_s = now
                    for message in messages:
                        self.batcher.add(tp.topic, tp.partition, message.offset, message.value, now)
                if flushing is None:
                    batches = self.batcher.due(time.monotonic())
                    if batches:
                        flushing = asyncio.create_task(self._flush_due(batches))
                if not consumer.assignment():  # joining the group is not idleness
                    last_message_s = time.monotonic()
                idle_s = time.monotonic() - last_message_s
                quiet = flushing is None and not self.batcher.pending
                if idle_exit_s is not None and idle_s >= idle_exit_s and quiet:
                    log.info("no message for %.0f s and everything committed: stopping", idle_s)
                    break
            if flushing is not None and not await flushing:
                return  # the rest is consumed again by the next run
            batches = self.batcher.due(time.monotonic(), drain=True)
            if batches:
                await self._flush_due(batches)
        finally:
            if flushing is not None and not flushing.done():
                flushing.cancel()
            await consumer.stop()

    async def _flush_due(self, batches: list[PartitionBatch]) -> bool:
        """Flush ``batches``; False if a Kafka commit failed (see :meth:`_recover`)."""
        try:
            await self.flush(batches)
        except KafkaError as exc:
            log.warning("offset commit failed (%s); re-consuming from the committed offsets", exc)
            return False
        return True

    async def _recover(self) -> None:
        """After a failed commit (rebalance, broker failure) the flushed batches may be inserted
        but not committed: forget everything held and consume again from the committed offsets
        and plans; the repeated inserts carry the same tokens and are dropped."""
        self.batcher.forget()
        consumer = self._consumer
        if consumer is None:
            return
        assigned = list(consumer.assignment())
        await self.load_plans(assigned)
        for tp in assigned:
            committed = await consumer.committed(tp)
            if committed is not None:
                consumer.seek(tp, committed)
            else:
                await consumer.seek_to_beginning(tp)


async def connect_with_retry(dsn: str, stop: asyncio.Event, backoff: Backoff | None = None) -> Any:
    """Connect to the warehouse, backing off while it is unreachable (None if stopped first)."""
    backoff = backoff or Backoff()
    while not stop.is_set():
        try:
            return await asyncio.to_thread(connect, dsn)
        except WarehouseError as exc:
            if is_embedded(dsn):
                raise
            delay = backoff.next()
            log.warning("%s; retrying in %.1fs", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
    return None


async def run_sink(
    settings: Settings,
    stop: asyncio.Event,
    *,
    group_id: str = GROUP_ID,
    idle_exit_s: float | None = None,
) -> Sink | None:
    """Migrate, serve queries for others if the store is embedded, and sink until ``stop``."""
    dsn = settings.resolved_warehouse_dsn
    client = await connect_with_retry(dsn, stop)
    if client is None:
        return None
    migrate(client, events_ttl_days=settings.warehouse.events_ttl_days)
    owner = None
    if is_embedded(dsn):
        owner = QueryOwner(connect(dsn), embedded_path(dsn), settings.warehouse.query_port)
        owner.start()
    sink = Sink(
        settings,
        client,
        group_id=group_id,
        crash_after_insert=os.environ.get(CRASH_HOOK_ENV) == "1",
    )
    try:
        await sink.run(stop, idle_exit_s)
    finally:
        if owner is not None:
            owner.close()
        client.close()
    log.info("sink stopped: %d messages stored and committed", sink.committed_messages)
    return sink
