"""The pipeline's Kafka topics: their layout, idempotent creation, and ``fairuse topics``.

Every data topic has ``events_partitions`` partitions so usage, violations, enforcement and
dead letters stay co-partitioned with the events by tenant key. The policy topic is a single
compacted partition. Each topic stamps records on append (``LogAppendTime``), so retention is
never driven by event time: a backdated event is not deleted before it is processed.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from fairuse.errors import BrokerError
from fairuse.kafka import broker_errors, client_kwargs
from fairuse.settings import TOPIC_NAMES, KafkaSettings, load_settings

__all__ = [
    "TopicSpec",
    "consumer_lag",
    "consumer_lag_async",
    "create_topics",
    "create_topics_async",
    "describe_topics",
    "describe_topics_async",
    "register",
    "topic_specs",
]

ADMIN_TIMEOUT_MS = 15_000
TopicOutcome = Literal["created", "exists"]


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic as the pipeline needs it."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: KafkaSettings) -> list[TopicSpec]:
    """The topics of the pipeline, in ``TOPIC_NAMES`` order."""
    specs = []
    for name in TOPIC_NAMES:
        configs = {"message.timestamp.type": "LogAppendTime"}
        partitions = settings.events_partitions
        if name == "policy":
            configs["cleanup.policy"] = "compact"
            partitions = 1
        elif name == "notify-deliveries":
            # the notifier's durable delivery state, keyed by delivery: latest per key, and
            # finished deliveries' markers (its dedup memory) expire after 14 days
            configs["cleanup.policy"] = "compact,delete"
            configs["retention.ms"] = str(14 * 86_400_000)
        specs.append(
            TopicSpec(settings.topic(name), partitions, settings.replication_factor, configs)
        )
    return specs


@asynccontextmanager
async def _admin(settings: KafkaSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client; Kafka failures inside the block become BrokerError."""
    admin = AIOKafkaAdminClient(request_timeout_ms=ADMIN_TIMEOUT_MS, **client_kwargs(settings))
    try:
        with broker_errors(settings):
            await admin.start()
            yield admin
    finally:
        await admin.close()


async def describe_topics_async(
    settings: KafkaSettings, names: Iterable[str] | None = None
) -> dict[str, int]:
    """Partition counts of the existing topics among ``names`` (all topics when ``None``)."""
    async with _admin(settings) as admin:
        found = await admin.describe_topics(list(names) if names is not None else None)
    return {t["topic"]: len(t["partitions"]) for t in found if t["error_code"] == 0}


async def _await_leaders(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partition counts of ``names`` once every partition has a leader (new topics take a
    moment to appear in the metadata); raises TimeoutError after ``ADMIN_TIMEOUT_MS``."""
    async with asyncio.timeout(ADMIN_TIMEOUT_MS / 1000):
        while True:
            found = await admin.describe_topics(names)
            ready = {
                t["topic"]: len(t["partitions"])
                for t in found
                if t["error_code"] == 0
                and t["partitions"]
                and all(p["leader"] >= 0 for p in t["partitions"])
            }
            if len(ready) == len(names):
                return ready
            await asyncio.sleep(0.05)


async def create_topics_async(
    settings: KafkaSettings, extra: Iterable[TopicSpec] = ()
) -> dict[str, TopicOutcome]:
    """Create the missing topics of :func:`topic_specs` and ``extra``; see
    :func:`create_topics`."""
    specs = [*topic_specs(settings), *extra]
    async with _admin(settings) as admin:
        response = await admin.create_topics(
            [
                NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.configs)
                for s in specs
            ],
            timeout_ms=ADMIN_TIMEOUT_MS,
        )
        outcomes: dict[str, TopicOutcome] = {}
        for topic, code, *message in response.topic_errors:
            error = for_code(code)
            if code == 0:
                outcomes[topic] = "created"
            elif error is TopicAlreadyExistsError:
                outcomes[topic] = "exists"
            else:
                detail = message[0] if message and message[0] else error.__name__
                raise BrokerError(f"cannot create topic {topic} at {settings.bootstrap}: {detail}")
        partitions = await _await_leaders(admin, [s.name for s in specs])
    for spec in specs:
        if partitions.get(spec.name) != spec.partitions:
            raise BrokerError(
                f"topic {spec.name} has {partitions.get(spec.name)} partitions, configuration "
                f"says {spec.partitions}; co-partitioning by tenant needs them equal"
            )
    return outcomes


def create_topics(
    settings: KafkaSettings, extra: Iterable[TopicSpec] = ()
) -> dict[str, TopicOutcome]:
    """Create the pipeline's topics (and ``extra``) that do not exist yet (idempotent).

    Returns each topic's outcome (``created`` or ``exists``). Raises :class:`BrokerError` if the
    broker is unreachable, refuses a topic, or an existing topic has another partition count.
    """
    return asyncio.run(create_topics_async(settings, extra))


def describe_topics(settings: KafkaSettings, names: Iterable[str] | None = None) -> dict[str, int]:
    """Partition counts of existing topics (all when ``names`` is ``None``)."""
    return asyncio.run(describe_topics_async(settings, names))


async def _group_offsets(admin: AIOKafkaAdminClient, group: str) -> dict:
    """The group's committed offsets; retries while the group coordinator is being set up (a
    fresh broker creates its offsets topic on the first group request)."""
    async with asyncio.timeout(ADMIN_TIMEOUT_MS / 1000):
        while True:
            try:
                return await admin.list_consumer_group_offsets(group)
            except KafkaError as exc:
                if not exc.retriable:
                    raise
            await asyncio.sleep(0.2)


async def consumer_lag_async(settings: KafkaSettings, group: str, topic: str) -> dict[int, int]:
    """Per partition of ``topic``: records not yet committed by consumer ``group``.

    A partition the group never committed counts from its log start, so a group that has not
    started yet shows the whole topic as lag.
    """
    async with _admin(settings) as admin:
        committed = await _group_offsets(admin, group)
        partitions = (await describe_topics_async(settings, [topic])).get(topic)
    if partitions is None:
        raise BrokerError(f"topic {topic} does not exist at {settings.bootstrap}")
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer = AIOKafkaConsumer(**client_kwargs(settings), enable_auto_commit=False)
    try:
        with broker_errors(settings):
            await consumer.start()
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
    finally:
        await consumer.stop()
    lag = {}
    for tp in tps:
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
        lag[tp.partition] = max(0, ends[tp] - done)
    return lag


def consumer_lag(settings: KafkaSettings, group: str, topic: str) -> dict[int, int]:
    """Synchronous :func:`consumer_lag_async`."""
    return asyncio.run(consumer_lag_async(settings, group, topic))


async def _wait_caught_up(
    settings: KafkaSettings, group: str, topic: str, wait_s: float
) -> dict[int, int]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        lag = await consumer_lag_async(settings, group, topic)
        if not any(lag.values()) or loop.time() >= deadline:
            return lag
        await asyncio.sleep(0.5)


def _cmd_create(args: argparse.Namespace) -> int:
    settings = load_settings().kafka
    for topic, outcome in create_topics(settings).items():
        print(f"{topic}\t{outcome}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    settings = load_settings().kafka
    names = None if args.all else [s.name for s in topic_specs(settings)]
    for topic, partitions in sorted(describe_topics(settings, names).items()):
        print(f"{topic}\tpartitions={partitions}")
    return 0


def _cmd_lag(args: argparse.Namespace) -> int:
    settings = load_settings().kafka
    topic = settings.topic(args.topic)
    lag = asyncio.run(_wait_caught_up(settings, args.group, topic, args.wait))
    total = sum(lag.values())
    print(f"{topic}\tgroup={args.group}\tlag={total}")
    if total and args.wait:
        raise BrokerError(
            f"group {args.group} still has {total} records of {topic} to process "
            f"after {args.wait:g} s"
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fairuse topics create`` and ``fairuse topics list``."""
    topics = subparsers.add_parser("topics", help="create or list the pipeline's Kafka topics")
    actions = topics.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create missing topics (idempotent)")
    create.set_defaults(func=_cmd_create)
    listing = actions.add_parser("list", help="list the pipeline's topics and partition counts")
    listing.add_argument("--all", action="store_true", help="list every topic of the cluster")
    listing.set_defaults(func=_cmd_list)
    lag = actions.add_parser(
        "lag", help="records of a topic a consumer group has not committed yet"
    )
    lag.add_argument("--group", required=True, help="consumer group id, e.g. fairuse-worker")
    lag.add_argument("--topic", default="events", choices=TOPIC_NAMES, help="default: events")
    lag.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="poll until the lag is 0; fail (exit 2) if it is not after SECONDS",
    )
    lag.set_defaults(func=_cmd_lag)
