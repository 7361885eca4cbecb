"""``fairuse sink``: Kafka topics -> ClickHouse, exactly once.

Consumes ``events``, ``usage``, ``violations``, ``enforcement`` and ``dead-letter`` (group
``fairuse-sink``, no auto-commit), batches per topic-partition (:mod:`.batching`), inserts
column-oriented per table with a deduplication token derived from topic, partition and the
batch's first and last offsets, and commits offsets only after every insert of the flush
succeeded.

Errors are told apart by code (:func:`fairuse.warehouse.client.is_transient`): a transient one
(network, timeout, overload, replicas away) is retried with capped exponential backoff, the same
block with the same token, never skipped; any other (schema, type) stops the sink with
:class:`SinkHalted`: one message naming the table, the partition and offsets and the
ClickHouse code, nothing committed past the last good batch, exit status 2.

Fault injection for tests: ``Sink(after_insert=...)`` is called after a flush's inserts and
before its commit (the exactly-once tests crash the process there). Production code never sets
it. ``run_sink`` serves ``/metrics``, ``/healthz``, ``/readyz`` on ``FAIRUSE_SINK_WEB_PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from fairuse.errors import BrokerError, WarehouseError
from fairuse.health import ProbeServer
from fairuse.kafka import client_kwargs
from fairuse.settings import Settings
from fairuse.warehouse.batching import Batcher, PartitionBatch, decode_plan, encode_plan
from fairuse.warehouse.client import (
    INSERT_SETTINGS,
    connect,
    describe,
    embedded_path,
    is_embedded,
    is_transient,
)
from fairuse.warehouse.migrate import migrate
from fairuse.warehouse.owner import QueryOwner
from fairuse.warehouse.rows import TABLE_COLUMNS, TOPIC_TABLES, columns_of
from fairuse.warehouse.sink_metrics import SinkMetrics

log = logging.getLogger(__name__)

GROUP_ID = "fairuse-sink"

Sleep = Callable[[float], Awaitable[None]]
AfterInsert = Callable[[list[PartitionBatch]], None]


class SinkHalted(WarehouseError):
    """ClickHouse rejected a batch for a reason retrying cannot fix (schema, types)."""


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
    """Inserts batches into ClickHouse, retrying each transient failure until it succeeds."""

    def __init__(
        self,
        client: Any,
        *,
        sleep: Sleep = asyncio.sleep,
        backoff: Backoff | None = None,
        metrics: SinkMetrics | None = None,
    ):
        self._client = client
        self._sleep = sleep
        self._backoff = backoff or Backoff()
        self._metrics = metrics
        self.inserted_rows = 0
        self.failures = 0
        self.failing = False  # the last attempt failed and is being retried

    def _insert(self, table: str, columns: list[list[Any]], token: str) -> None:
        self._client.insert(
            table,
            columns,
            column_names=list(TABLE_COLUMNS[table]),
            column_oriented=True,
            settings={**INSERT_SETTINGS, "insert_deduplication_token": token},
        )

    async def write(self, batch: PartitionBatch) -> None:
        """Insert every table's rows of ``batch``; on a transient failure back off and retry
        the same block; on any other raise :class:`SinkHalted`."""
        metrics = self._metrics
        for table, rows in sorted(batch.rows.items()):
            if not rows:
                continue
            token = batch.token(table)
            while True:
                started = time.perf_counter()
                try:
                    columns = columns_of(rows)
                    await asyncio.to_thread(self._insert, table, columns, token)
                except Exception as exc:
                    self.failures += 1
                    transient = is_transient(exc)
                    if metrics is not None:
                        outcome = "retried" if transient else "fatal"
                        metrics.insert_failures.labels(table, outcome).inc()
                    if not transient:
                        raise SinkHalted(_rejected(batch, table, len(rows), exc)) from exc
                    self.failing = True
                    delay = self._backoff.next()
                    log.warning(
                        "insert of %d rows into %s (token %s) failed, retrying in %.1fs: %s",
                        len(rows), table, token, delay, describe(exc),
                    )  # fmt: skip
                    await self._sleep(delay)
                    continue
                self.failing = False
                self._backoff.reset()
                self.inserted_rows += len(rows)
                if metrics is not None:
                    metrics.insert_duration.labels(table).observe(time.perf_counter() - started)
                    metrics.rows.labels(table).inc(len(rows))
                break


def _rejected(batch: PartitionBatch, table: str, rows: int, exc: BaseException) -> str:
    return (
        f"ClickHouse rejected the insert of {rows} rows into {table} from {batch.topic} "
        f"partition {batch.partition}, offsets {batch.first}-{batch.last}: {describe(exc)}. "
        f"Retrying cannot fix this (schema or types): the sink stopped and committed nothing "
        f"from offset {batch.first} of that partition on; fix the table (fairuse warehouse "
        f"migrate) or the data, then restart it"
    )


class _PlanListener(ConsumerRebalanceListener):
    """On assignment, read each partition's batch plan back from the group's commit metadata."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._sink.batcher.forget([(tp.topic, tp.partition) for tp in revoked])
        for tp in revoked:
            self._sink.committed_offsets.pop(tp, None)
            self._sink.consumed_next.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._sink.load_plans(list(assigned))
        self._sink.joined = True


class Sink:
    """The consume -> batch -> insert -> commit loop."""

    def __init__(
        self,
        settings: Settings,
        client: Any,
        *,
        group_id: str = GROUP_ID,
        metrics: SinkMetrics | None = None,
        after_insert: AfterInsert | None = None,
    ) -> None:
        kafka = settings.kafka
        self._settings = settings
        self.topic_tables = {kafka.topic(name): table for name, table in TOPIC_TABLES.items()}
        self.group_id = group_id
        self.batcher = Batcher(
            self.topic_tables, settings.warehouse.sink_batch_rows, settings.warehouse.sink_batch_ms
        )
        self.metrics = metrics
        self.writer = BatchWriter(client, metrics=metrics)
        # Messages held while a flush runs before fetching pauses (bounds memory when ClickHouse
        # is slow or down): four full batches' worth.
        self._max_pending = 4 * settings.warehouse.sink_batch_rows
        self._after_insert = after_insert
        self._consumer: AIOKafkaConsumer | None = None
        self.committed_messages = 0
        self.committed_offsets: dict[TopicPartition, int | None] = {}
        self.consumed_next: dict[TopicPartition, int] = {}  # offset after the last consumed
        self.joined = False  # the group gave this sink an assignment (possibly empty)

    def conditions(self) -> dict[str, bool]:
        """Readiness: the warehouse answers (no insert failing) and the group was joined."""
        return {"warehouse_connected": not self.writer.failing, "consuming": self.joined}

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
            self.committed_offsets[tp] = meta.offset if meta is not None else None
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
        if self._after_insert is not None:
            self._after_insert(batches)  # fault injection (tests only)
        # 3. Commit the offsets after the last batch of each partition, clearing the plan.
        await consumer.commit(
            {tp: OffsetAndMetadata(group[-1].last + 1, "") for tp, group in by_tp.items()}
        )
        # 4. Only now count the messages as stored.
        self.committed_messages += sum(b.count for b in batches)
        for tp, group in by_tp.items():
            self.committed_offsets[tp] = group[-1].last + 1
        if self.metrics is not None:
            for batch in batches:
                self.metrics.committed.labels(self._topic_name(batch.topic)).inc(batch.count)
            self.metrics.last_commit.set_to_current_time()

    def _topic_name(self, topic: str) -> str:
        return topic.removeprefix(self._settings.kafka.topic_prefix)

    async def read_lag(self) -> None:
        """Set the commit lag gauges: per topic, the assigned partitions' messages up to the
        last stable offset that are not committed yet. A partition whose consumed messages are
        all committed and whose position is at the end has none (transaction markers after the
        last record are not messages)."""
        consumer, metrics = self._consumer, self.metrics
        if consumer is None or metrics is None:
            return
        assigned = list(consumer.assignment())
        metrics.assigned_partitions.set(len(assigned))
        if not assigned:
            return
        ends = await consumer.end_offsets(assigned)
        unknown = [tp for tp in assigned if self.committed_offsets.get(tp) is None]
        starts = await consumer.beginning_offsets(unknown) if unknown else {}
        by_topic: dict[str, int] = {}
        for tp in assigned:
            done = self.committed_offsets.get(tp)
            done = starts.get(tp, 0) if done is None else done
            caught_up = done >= self.consumed_next.get(tp, done)
            if caught_up and await consumer.position(tp) >= ends[tp]:
                continue
            name = self._topic_name(tp.topic)
            by_topic[name] = by_topic.get(name, 0) + max(0, ends[tp] - done)
        metrics.lag(by_topic, TOPIC_TABLES)

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
                    self.consumed_next[tp] = messages[-1].offset + 1
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
    """Connect to the warehouse, backing off while it is unreachable (None if stopped first);
    an error retrying cannot fix (the embedded store held, bad credentials) is raised."""
    backoff = backoff or Backoff()
    while not stop.is_set():
        try:
            return await asyncio.to_thread(connect, dsn)
        except WarehouseError as exc:
            if is_embedded(dsn) or not is_transient(exc.__cause__ or exc):
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
    after_insert: AfterInsert | None = None,
) -> Sink | None:
    """Serve the health pages, migrate, serve queries for others if the store is embedded, and
    sink until ``stop``. ``after_insert`` is the tests' fault-injection seam (see :class:`Sink`)."""
    metrics = SinkMetrics()
    holder: list[Sink] = []

    def conditions() -> dict[str, bool]:
        found = holder[0].conditions() if holder else {"warehouse_connected": False}
        found.setdefault("consuming", False)
        metrics.ready.set(1 if all(found.values()) else 0)
        return found

    ops = settings.ops
    probes = None
    if ops.sink_web_port:
        probes = ProbeServer(metrics.registry, conditions, ops.sink_web_host, ops.sink_web_port)
        await probes.start()
    try:
        return await _sink_until_stopped(
            settings, stop, group_id, idle_exit_s, metrics, holder, after_insert
        )
    finally:
        if probes is not None:
            await probes.close()


async def _sink_until_stopped(
    settings: Settings,
    stop: asyncio.Event,
    group_id: str,
    idle_exit_s: float | None,
    metrics: SinkMetrics,
    holder: list[Sink],
    after_insert: AfterInsert | None,
) -> Sink | None:
    dsn = settings.resolved_warehouse_dsn
    client = await connect_with_retry(dsn, stop)
    if client is None:
        return None
    migrate(client, events_ttl_days=settings.warehouse.events_ttl_days)
    owner = None
    if is_embedded(dsn):
        owner = QueryOwner(connect(dsn), embedded_path(dsn), settings.warehouse.query_port)
        owner.start()
    sink = Sink(settings, client, group_id=group_id, metrics=metrics, after_insert=after_insert)
    holder.append(sink)
    lag_reader = asyncio.create_task(_read_lag_every(sink, settings.ops.lag_interval_s))
    try:
        await sink.run(stop, idle_exit_s)
    finally:
        lag_reader.cancel()
        if owner is not None:
            owner.close()
        client.close()
    log.info("sink stopped: %d messages stored and committed", sink.committed_messages)
    return sink


async def _read_lag_every(sink: Sink, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await sink.read_lag()
        except KafkaError as exc:  # the broker is away: keep the last figures
            log.warning("cannot read the commit lag: %s", exc)
