"""The policy topic: ``fairuse policy publish`` writes a validated TOML file to it; every worker
reads it from the beginning (no consumer group, so each worker sees every revision) and swaps the
ledger's policy without a restart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from fairuse.errors import BrokerError, PolicyError
from fairuse.kafka import client_kwargs
from fairuse.policy import Policy, parse_policy
from fairuse.settings import KafkaSettings
from fairuse.topics import describe_topics_async

POLICY_KEY = b"current"
log = logging.getLogger(__name__)


async def publish_policy(kafka: KafkaSettings, text: str, source: str = "<policy>") -> Policy:
    """Validate ``text`` (raise PolicyError if bad) and publish it to the policy topic."""
    policy = parse_policy(text, source)
    producer = AIOKafkaProducer(acks="all", **client_kwargs(kafka))
    try:
        await producer.start()
        await producer.send_and_wait(kafka.topic("policy"), text.encode(), key=POLICY_KEY)
    except KafkaError as exc:
        raise BrokerError(f"cannot publish the policy to {kafka.topic('policy')}: {exc}") from exc
    finally:
        await producer.stop()
    return policy


def decode_policy(value: bytes | None, where: str) -> Policy | None:
    """The policy in a policy-topic message, or None (logged) when it is empty or invalid."""
    if not value:
        return None
    try:
        return parse_policy(value.decode("utf-8"), where)
    except (PolicyError, UnicodeDecodeError) as exc:
        log.error("ignoring invalid policy at %s: %s", where, exc)
        return None


async def follow_policy(
    kafka: KafkaSettings,
    apply: Callable[[Policy], None],
    ready: asyncio.Event,
    poll_timeout_ms: int = 1000,
) -> None:
    """Apply the topic's latest policy, set ``ready`` once caught up, then apply each new one."""
    topic = kafka.topic("policy")
    consumer = AIOKafkaConsumer(enable_auto_commit=False, group_id=None, **client_kwargs(kafka))
    await consumer.start()
    try:
        partitions = (await describe_topics_async(kafka, [topic])).get(topic)
        if not partitions:
            log.warning("policy topic %s does not exist; keeping the local policy", topic)
            ready.set()
            return
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        latest: Policy | None = None
        while True:
            batches = await consumer.getmany(timeout_ms=poll_timeout_ms)
            for tp, messages in batches.items():
                for message in messages:
                    where = f"{tp.topic}/{tp.partition}/{message.offset}"
                    latest = decode_policy(message.value, where) or latest
            if latest is not None:
                apply(latest)
                latest = None
            if not ready.is_set() and all(
                await asyncio.gather(*(_position_reached(consumer, tp, end[tp]) for tp in tps))
            ):
                ready.set()
    finally:
        await consumer.stop()


async def _position_reached(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> bool:
    return await consumer.position(tp) >= offset
