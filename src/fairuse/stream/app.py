"""The Faust application of ``fairuse worker``: topics, tables, the batch task, the timer.

Faust runs the app, the consumer group and its rebalances, table recovery (reading
``read_committed``; the changelog records themselves are applied a whole fetch at a time by
:class:`~fairuse.stream.recovery.ChangelogApplier`), the web server and the timer. A plain
channel subscribes the events topic (no Stream, no acks: Faust commits nothing itself); the
transport hands each fetch of it whole to a :class:`~fairuse.stream.feed.FetchFeed`
(``stream/transport.py``), and one task takes batches from the feed and hands each to
:class:`~fairuse.stream.delivery.BatchDelivery`, which commits every events partition's part
of the batch in one Kafka transaction (outputs, state, offsets). See docs/streaming.md
("Delivery")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka.admin import AIOKafkaAdminClient
from faust.sensors import Monitor
from faust.types import TP

from fairuse.kafka import client_kwargs, ssl_context
from fairuse.policy import Policy
from fairuse.settings import Settings
from fairuse.stream.core import StreamCore
from fairuse.stream.delivery import (
    SEEK_INTERVAL_S,
    BatchDelivery,
    PartitionProducers,
)
from fairuse.stream.feed import FetchFeed
from fairuse.stream.health import WorkerProbe
from fairuse.stream.policy_feed import follow_policy
from fairuse.stream.recovery import ChangelogApplier
from fairuse.stream.transport import Transport
from fairuse.stream.views import register_views
from fairuse.topics import TopicSpec

log = logging.getLogger(__name__)


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


TABLES = ("tenants", "positions")
"""The worker's tables; the names are kept across versions, so a new version recovers from the
changelogs of the previous one."""


def table_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Each table's extra changelog topic configs: the tenants' accept the largest record."""
    return {
        "tenants": {"max.message.bytes": str(settings.worker.max_record_bytes)},
        "positions": {},
    }


def changelog_specs(settings: Settings) -> list[TopicSpec]:
    """The tables' changelog topics as Faust names and configures them (``<app_id>-<table>-
    changelog``, compacted, co-partitioned with the events topic), to create before Faust
    subscribes to them."""
    kafka = settings.kafka
    return [
        TopicSpec(
            f"{settings.worker.app_id}-{name}-changelog",
            kafka.events_partitions,
            kafka.replication_factor,
            {"cleanup.policy": "compact", **configs},
        )
        for name, configs in table_configs(settings).items()
    ]


class TableReader:
    """The core's read access to a table (:class:`~fairuse.stream.core.StateReader`). With
    the memory store it reads the store's dict directly: ``Table.get`` costs several Python
    calls and, on every miss (each new event id), a raised ``KeyError``; that was a tenth of
    the worker's CPU. Other stores (RocksDB) are read through the table."""

    def __init__(self, table: faust.Table) -> None:
        self.table = table
        self._get: Any = None

    def get(self, key: str) -> bytes | None:
        """The stored value of ``key``, or None."""
        if self._get is None:  # the store exists once the app runs
            data = getattr(self.table.data, "data", None)
            self._get = data.get if isinstance(data, dict) else self.table.get
        return self._get(key)


@dataclass
class Worker:
    """The Faust app with the pieces tests and the CLI reach for."""

    app: faust.App
    core: StreamCore
    events_topic: faust.TopicT
    tenants: faust.Table
    positions: faust.Table
    producers: PartitionProducers
    settings: Settings
    policy_ready: asyncio.Event

    def assigned_partitions(self) -> set[int]:
        """The events partitions assigned to this worker right now."""
        name = self.events_topic.get_topic_name()
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic == name}

    async def start_offsets(self) -> dict[int, int]:
        """Where each assigned events partition's run starts: the position committed with its
        state (the positions table), else the group's committed offset (a changelog of an
        earlier version), else the partition's first retained offset."""
        topic = self.events_topic.get_topic_name()
        assigned = self.assigned_partitions()
        found: dict[int, int] = {}
        for partition in assigned:
            position = self.positions.get(str(partition))
            if position is not None:
                found[partition] = int(position)
        if assigned - set(found):
            found = {**await self._group_offsets(topic), **found}
        missing = [TP(topic, p) for p in assigned if p not in found]
        if missing:
            earliest = await self.app.consumer.earliest_offsets(*missing)
            found.update({tp.partition: offset for tp, offset in earliest.items()})
        return found

    async def _group_offsets(self, topic: str) -> Mapping[int, int]:
        admin = AIOKafkaAdminClient(**client_kwargs(self.settings.kafka))
        await admin.start()
        try:
            found = await admin.list_consumer_group_offsets(self.settings.worker.app_id)
        finally:
            await admin.close()
        return {
            tp.partition: m.offset for tp, m in found.items() if tp.topic == topic and m.offset >= 0
        }

    async def seek(self, partition: int, offset: int) -> None:
        """Fetch ``partition`` of the events topic again from ``offset``."""
        await self.app.consumer.seek(TP(self.events_topic.get_topic_name(), partition), offset)


def create_worker(settings: Settings, policy: Policy) -> Worker:
    """Build the worker's Faust app for ``settings``, starting with ``policy`` (the
    composition root: the views and the policy feed get what they need from here)."""
    kafka, conf = settings.kafka, settings.worker
    canonical = conf.canonical_url or f"http://{conf.web_host}:{conf.web_port}"
    datadir = settings.data_dir / "worker" / conf.app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        conf.app_id,
        # Faust's aiokafka transport with broker highwaters (stream/transport.py)
        broker=[f"fairuse://{host.strip()}" for host in kafka.bootstrap.split(",")],
        broker_credentials=broker_credentials(settings),
        store=conf.store,
        # Faust itself produces nothing and commits nothing here (no acked streams, no table
        # writes through Faust); "exactly_once" makes its consumer and its table recovery read
        # read_committed and detect the transaction markers at the end of a changelog.
        processing_guarantee="exactly_once",
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
        consumer_max_fetch_size=conf.max_record_bytes,
        broker_max_poll_records=conf.max_poll_records,
        stream_buffer_maxsize=max(4096, conf.batch_max * 2),
        stream_wait_empty=False,
        table_cleanup_interval=3600.0,
        broker_session_timeout=float(conf.session_timeout_s),
        broker_heartbeat_interval=min(3.0, conf.session_timeout_s / 3),
    )
    events_topic = app.topic(
        kafka.topic("events"), key_type=bytes, value_type=bytes, value_serializer="raw", acks=False
    )
    tenants, positions = (
        app.Table(
            name,
            key_type=str,
            value_type=bytes,
            extra_topic_configs=configs,
            options=settings.rocksdb.table_options(),  # the memory store ignores them
        )
        for name, configs in table_configs(settings).items()
    )
    core = StreamCore(policy, kafka, TableReader(tenants))
    producers = PartitionProducers(
        kafka, conf.app_id, conf.producer_linger_ms, conf.max_record_bytes
    )
    policy_ready = asyncio.Event()
    worker = Worker(app, core, events_topic, tenants, positions, producers, settings, policy_ready)
    delivery = BatchDelivery(
        core=core,
        producers=producers,
        events_topic=events_topic.get_topic_name(),
        group_id=conf.app_id,
        tenants=tenants,
        tenants_changelog=tenants.changelog_topic.get_topic_name(),
        positions=positions,
        positions_changelog=positions.changelog_topic.get_topic_name(),
        seek=worker.seek,
        start_offsets=worker.start_offsets,
    )
    delivery.observer = WorkerProbe(worker, settings)
    _wire(worker, delivery)
    register_views(app, core, events_topic, settings)
    return worker


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


def _wire(worker: Worker, delivery: BatchDelivery) -> None:
    app, core = worker.app, worker.core
    conf, kafka = worker.settings.worker, worker.settings.kafka
    # The channel subscribes the events topic; its fetches go whole to the feed, not to it.
    app.topics.add(worker.events_topic.clone(is_iterator=True))
    feed = FetchFeed()
    transport = app.transport
    if not isinstance(transport, Transport):
        raise TypeError(f"the worker needs the fairuse:// transport, got {type(transport)}")
    transport.bulk[worker.events_topic.get_topic_name()] = feed.put
    transport.fetch_max_wait_ms = conf.fetch_max_wait_ms
    # The tables' changelogs (recovery, standbys) are applied a fetch at a time, not per message.
    changelogs = ChangelogApplier(app)
    for table in (worker.tenants, worker.positions):
        transport.bulk[table.changelog_topic.get_topic_name()] = changelogs.apply

    @app.task
    async def process_events() -> None:
        within_s = conf.batch_within_ms / 1000
        while not app.should_stop:
            messages = await feed.batch(conf.batch_max, within_s, SEEK_INTERVAL_S)
            if not messages:
                await delivery.refetch()  # a hole whose messages have not arrived again
                continue
            generation = delivery.generation
            await worker.policy_ready.wait()
            await delivery.run(messages, generation)

    @app.timer(interval=float(conf.expiry_interval_s))
    async def expire_idle_sessions() -> None:
        if app.rebalancing or app.in_recovery or not worker.policy_ready.is_set():
            return
        await delivery.expire(delivery.generation)

    @app.task
    async def follow_policy_topic() -> None:
        def apply(policy: Policy) -> None:
            log.info("applying policy from %s", kafka.topic("policy"))
            core.policy = policy

        await follow_policy(kafka, apply, worker.policy_ready)

    async def rebalanced(owned: set[int]) -> None:
        # Fetches of partitions that moved away are dropped; the batch in flight commits or
        # aborts before the rebalance goes on.
        feed.retain(owned)
        await delivery.rebalanced(owned)

    @app.on_partitions_revoked.connect
    async def _revoked(sender: Any, revoked: Any = None, **kwargs: Any) -> None:
        await rebalanced(worker.assigned_partitions() - _partitions(worker, revoked))

    @app.on_partitions_assigned.connect
    async def _assigned(sender: Any, assigned: Any = None, **kwargs: Any) -> None:
        await rebalanced(worker.assigned_partitions())


def _partitions(worker: Worker, tps: Any) -> set[int]:
    name = worker.events_topic.get_topic_name()
    return {tp.partition for tp in tps or () if tp.topic == name}
