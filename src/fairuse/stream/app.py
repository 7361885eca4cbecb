"""The Faust application of ``fairuse worker``: topics, tables, the agent, the expiry timer.

One agent (``concurrency=1``, faust #606) consumes the events topic in batches and runs
:class:`~fairuse.stream.core.StreamCore`. Per batch it (1) keeps the messages that continue
each partition's run of offsets (``offsets.py``), (2) runs the ledger in memory, (3) sends every
output record and waits until the broker acknowledged all of them, (4) writes each touched
tenant's entry once to the changelog-backed table and waits for those records too, and (5)
commits the processed offsets itself (Faust's own commits are off). So outputs are durable no
later than the state that implies them, and the state no later than the committed offsets; see
docs/streaming.md ("Delivery"). The waits of (3)-(5) run in a task holding ``Worker.lock``
while the agent gathers the next batch, which takes the lock before its step (1)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka.admin import AIOKafkaAdminClient
from faust.sensors import Monitor
from faust.tables.table import Table
from faust.types import TP

from fairuse.kafka import client_kwargs, ssl_context
from fairuse.policy import Policy
from fairuse.settings import Settings
from fairuse.stream.core import Inbound, Outbound, StateWrite, StreamCore
from fairuse.stream.offsets import OffsetTracker

log = logging.getLogger(__name__)


class TenantTable(Table):
    """A table whose changelog partition is the partition the tenant's events arrive on.

    Writes happen once per batch (outside Faust's per-event context): :meth:`write` applies the
    core's :class:`StateWrite` records to the store and sends each to the partition it names
    (straight through the producer, not Faust's ``send_soon`` buffer, whose flushes stall a
    large batch).
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self._unconfirmed: list[asyncio.Future] = []

    async def write(self, writes: Sequence[StateWrite]) -> None:
        """Apply ``writes`` to the store and send them to the changelog (None: a tombstone);
        :meth:`written` waits until the broker has them."""
        send, store = self.app.producer.send, self.data
        changelog = self.changelog_topic
        topic = changelog.get_topic_name()
        for write in writes:
            if write.value is None:
                store.pop(write.key, None)
            else:
                store[write.key] = write.value
            key, _ = changelog.prepare_key(write.key, self.key_serializer)  # as recovery reads it
            future = await send(topic, key, write.value, write.partition, None, None)
            self._unconfirmed.append(future)

    async def written(self) -> None:
        """Wait until the broker has every changelog record sent so far.

        Faust's ``producer.flush()`` gives up after 0.1 s without progress, so it cannot be
        the barrier before an offset commit; the records' own futures are.
        """
        pending, self._unconfirmed = self._unconfirmed, []
        if pending:
            await asyncio.gather(*pending)


async def _acknowledged(futures: list[asyncio.Future]) -> None:
    if futures:
        await asyncio.gather(*futures)


def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust credentials for the configured Kafka security protocol (None for PLAINTEXT)."""
    kafka = settings.kafka
    context = ssl_context(kafka)
    if kafka.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password,
            mechanism=kafka.sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


@dataclass
class Worker:
    """The Faust app with the pieces tests and the CLI reach for."""

    app: faust.App
    core: StreamCore
    events_topic: faust.TopicT
    table: TenantTable
    settings: Settings
    offsets: OffsetTracker = field(default_factory=OffsetTracker)
    offsets_stale: bool = True
    policy_ready: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def publish(self, outputs: Sequence[Outbound]) -> None:
        """Send ``outputs`` and wait until the broker has acknowledged every one."""
        await _acknowledged(await self.send(outputs))

    async def send(self, outputs: Sequence[Outbound]) -> list[asyncio.Future]:
        """Hand ``outputs`` to the producer, in order; their futures resolve on the broker's ack."""
        producer = self.app.producer
        return [
            await producer.send(out.topic, out.key, out.value, None, None, None) for out in outputs
        ]

    async def finish(self, sent: list[asyncio.Future], messages: Sequence[Inbound]) -> None:
        """Complete a batch whose outputs were sent, then release :attr:`lock` (held by the
        caller): outputs acknowledged, then the state written and acknowledged, then offsets."""
        try:
            await _acknowledged(sent)
            await self.table.write(self.core.commit())
            await self.commit_offsets(messages)
        except BaseException:
            # The batch's effects may not be durable: whoever takes the lock next reloads the
            # entries and offsets (the next batch then raises this error, see _wire).
            self.core.discard()
            self.offsets_stale = True
            log.exception("batch not completed")
            raise
        finally:
            self.lock.release()

    async def admit(self, events: Sequence[faust.EventT]) -> list[Inbound]:
        """The batch's messages that continue their partitions' runs (see ``offsets.py``);
        partitions with a hole are fetched again from their next offset."""
        if self.offsets_stale:
            self.offsets_stale = False
            self.offsets.reset(await self.committed_offsets())
        admitted = self.offsets.admit(
            Inbound(e.message.value, e.message.topic, e.message.partition, e.message.offset)
            for e in events
        )
        topic = self.events_topic.get_topic_name()
        for partition, offset in admitted.seek.items():
            log.info("re-fetching %s/%d from offset %d", topic, partition, offset)
            await self.app.consumer.seek(TP(topic, partition), offset)
        return admitted.messages

    async def committed_offsets(self) -> dict[int, int]:
        """Where each assigned events partition's run starts: the group's committed offset, or
        the partition's first retained offset when nothing was committed yet (never the first
        message that happens to be delivered: messages dropped at a rebalance came before it)."""
        topic = self.events_topic.get_topic_name()
        admin = AIOKafkaAdminClient(**client_kwargs(self.settings.kafka))
        await admin.start()
        try:
            found = await admin.list_consumer_group_offsets(self.settings.worker.app_id)
        finally:
            await admin.close()
        committed = {
            tp.partition: meta.offset
            for tp, meta in found.items()
            if tp.topic == topic and meta.offset >= 0
        }
        missing = [TP(topic, p) for p in self.assigned_partitions() if p not in committed]
        if missing:
            earliest = await self.app.consumer.earliest_offsets(*missing)
            committed.update({tp.partition: offset for tp, offset in earliest.items()})
        return committed

    async def commit_offsets(self, messages: Sequence[Inbound]) -> None:
        """Wait until the batch's state is durable, then commit the processed runs' offsets."""
        await self.table.written()
        topic = self.events_topic.get_topic_name()
        offsets = self.offsets.committable({m.partition for m in messages})
        if offsets:
            tps = {TP(topic, partition): offset for partition, offset in offsets.items()}
            await self.app.consumer._commit(tps)  # private: Faust's own commits are off

    def assigned_partitions(self) -> set[int]:
        """The events partitions assigned to this worker right now."""
        name = self.events_topic.get_topic_name()
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic == name}


def create_worker(settings: Settings, policy: Policy) -> Worker:
    """Build the worker's Faust app for ``settings``, starting with ``policy``."""
    kafka, conf = settings.kafka, settings.worker
    canonical = conf.canonical_url or f"http://{conf.web_host}:{conf.web_port}"
    datadir = settings.data_dir / "worker" / conf.app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        conf.app_id,
        broker=[f"kafka://{host.strip()}" for host in kafka.bootstrap.split(",")],
        broker_credentials=broker_credentials(settings),
        store=conf.store,
        processing_guarantee=conf.processing_guarantee,
        topic_partitions=kafka.events_partitions,
        topic_replication_factor=kafka.replication_factor,
        topic_allow_declare=True,
        datadir=str(datadir),
        web_host=conf.web_host,
        web_port=conf.web_port,
        canonical_url=canonical,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        autodiscover=False,
        monitor=QuietMonitor(),
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_linger_ms=conf.producer_linger_ms,
        producer_acks=-1,
        producer_compression_type=None,
        producer_max_request_size=conf.max_record_bytes,
        consumer_max_fetch_size=conf.max_record_bytes,
        broker_max_poll_records=conf.max_poll_records,
        stream_buffer_maxsize=max(4096, conf.batch_max * 2),
        table_cleanup_interval=3600.0,
        broker_session_timeout=float(conf.session_timeout_s),
        broker_heartbeat_interval=min(3.0, conf.session_timeout_s / 3),
    )
    events_topic = app.topic(
        kafka.topic("events"), key_type=bytes, value_type=bytes, value_serializer="raw"
    )
    table = _tenant_table(app, "tenants", kafka.events_partitions, conf.max_record_bytes)
    core = StreamCore(policy, kafka, table)
    worker = Worker(app, core, events_topic, table, settings)
    _commit_only_processed_offsets(app)
    _wire(worker, settings)
    return worker


def _commit_only_processed_offsets(app: faust.App) -> None:
    """Switch off Faust's own offset commits: they follow acks, and Faust acks the messages it
    skips after a rebalance, which would commit past unprocessed messages (see offsets.py)."""

    async def no_commit(*args: Any, **kwargs: Any) -> bool:
        return False

    app.consumer.force_commit = no_commit  # type: ignore[method-assign]


class QuietMonitor(Monitor):
    """Faust's monitor without its per-message bookkeeping (several callbacks per message that
    nothing reads: the web stats page is off); rebalance and commit hooks stay."""

    def on_message_in(self, *args: Any) -> None:
        return None

    def on_message_out(self, *args: Any) -> None:
        return None

    def on_stream_event_in(self, *args: Any) -> None:
        return None

    def on_stream_event_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_send_initiated(self, *args: Any) -> None:
        return None

    def on_send_completed(self, *args: Any) -> None:
        return None

    def on_table_get(self, *args: Any) -> None:
        return None

    def on_table_set(self, *args: Any) -> None:
        return None


def _tenant_table(app: faust.App, name: str, partitions: int, max_bytes: int) -> TenantTable:
    table = TenantTable(
        app,
        name=name,
        default=None,
        key_type=str,
        value_type=bytes,
        partitions=partitions,
        beacon=app.tables.beacon,
        extra_topic_configs={"max.message.bytes": str(max_bytes)},
    )
    app.tables.add(table)
    return table


def _wire(worker: Worker, settings: Settings) -> None:
    from fairuse.stream.policy_feed import follow_policy
    from fairuse.stream.views import register_views

    app, core, conf = worker.app, worker.core, settings.worker

    @app.agent(worker.events_topic, concurrency=1, name="fairuse.process-events")
    async def process_events(stream: faust.StreamT) -> None:
        within = conf.batch_within_ms / 1000
        in_flight: asyncio.Task | None = None
        try:
            async for events in stream.take_events(conf.batch_max, within=within):
                await worker.policy_ready.wait()
                await worker.lock.acquire()
                try:
                    if in_flight is not None:
                        in_flight, previous = None, in_flight
                        previous.result()  # done (it released the lock); raise its error
                    # A batch gathered before a rebalance may hold partitions that moved away:
                    # their new owner processes them (see _revoked).
                    owned = worker.assigned_partitions()
                    events = [e for e in events if e.message.partition in owned]
                    messages = await worker.admit(events)
                    batch = core.process(messages)
                    sent = await worker.send(batch.outputs)
                except BaseException:
                    worker.lock.release()
                    raise
                # The batch's round trips run while the next batch is gathered; the lock,
                # released when its offsets are committed, keeps the order between batches
                # and makes a revocation wait for it.
                in_flight = asyncio.ensure_future(worker.finish(sent, messages))
        finally:
            if in_flight is not None:
                await in_flight

    @app.timer(interval=float(conf.expiry_interval_s))
    async def expire_idle_sessions() -> None:
        if app.rebalancing or app.in_recovery or not worker.policy_ready.is_set():
            return
        async with worker.lock:
            owned = worker.assigned_partitions()
            batch = core.expire_idle(owned.__contains__)
            await worker.publish(batch.outputs)
            await worker.table.write(core.commit())
            await worker.table.written()

    @app.task
    async def follow_policy_topic() -> None:
        def apply(policy: Policy) -> None:
            log.info("applying policy from %s", settings.kafka.topic("policy"))
            core.policy = policy

        await follow_policy(settings.kafka, apply, worker.policy_ready)

    @app.on_partitions_revoked.connect
    async def _revoked(sender: Any, revoked: Any = None, **kwargs: Any) -> None:
        # Faust acks a batch's events as they are gathered, so its wait for acked events does
        # not wait for the batch in flight. Waiting for the lock does: the batch's state and
        # offsets are durable before the rebalance goes on and another worker recovers them.
        async with worker.lock:
            core.discard()
            worker.offsets_stale = True

    @app.on_partitions_assigned.connect
    async def _assigned(sender: Any, assigned: Any = None, **kwargs: Any) -> None:
        core.discard()
        worker.offsets_stale = True

    register_views(worker, settings)
