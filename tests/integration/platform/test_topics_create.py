"""create_topics against the real broker: idempotent, partition counts, per-topic configs."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from fairuse.errors import BrokerError
from fairuse.kafka import client_kwargs
from fairuse.settings import TOPIC_NAMES, KafkaSettings
from fairuse.topics import create_topics, describe_topics
from kafka_support import scaled_s

LOG_APPEND_TIME = 1  # aiokafka's ConsumerRecord.timestamp_type for broker-stamped records


def _topic_configs(settings: KafkaSettings, topic: str) -> dict[str, str]:
    async def describe() -> dict[str, str]:
        admin = AIOKafkaAdminClient(**client_kwargs(settings))
        await admin.start()
        try:
            [response] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic)]
            )
        finally:
            await admin.close()
        [resource] = response.resources
        entries = resource[4]
        return {entry[0]: entry[1] for entry in entries}

    return asyncio.run(describe())


def test_first_call_creates_every_topic_later_calls_find_them(kafka_bootstrap: str) -> None:
    settings = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=f"c{uuid.uuid4().hex[:8]}.")

    first = create_topics(settings)
    second = create_topics(settings)

    names = [settings.topic(name) for name in TOPIC_NAMES]
    assert first == dict.fromkeys(names, "created")
    assert second == dict.fromkeys(names, "exists")


def test_partition_counts_follow_the_settings(kafka_settings: KafkaSettings) -> None:
    partitions = describe_topics(kafka_settings, [kafka_settings.topic(n) for n in TOPIC_NAMES])

    assert partitions == {
        kafka_settings.topic(name): 1 if name == "policy" else kafka_settings.events_partitions
        for name in TOPIC_NAMES
    }


def test_policy_topic_is_compacted_and_every_topic_stamps_on_append(
    kafka_settings: KafkaSettings,
) -> None:
    configs = {
        name: _topic_configs(kafka_settings, kafka_settings.topic(name)) for name in TOPIC_NAMES
    }

    assert configs["policy"]["cleanup.policy"] == "compact"
    assert configs["events"]["cleanup.policy"] == "delete"
    assert {c["message.timestamp.type"] for c in configs.values()} == {"LogAppendTime"}


def test_a_backdated_event_gets_the_brokers_append_time(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.topic("events")
    backdated_ms = 1_000_000_000_000  # 2001-09-09: far beyond any retention period

    async def produce_and_read() -> tuple[int, int]:
        producer = AIOKafkaProducer(**client_kwargs(kafka_settings))
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"{}", key=b"tenant-a", timestamp_ms=backdated_ms)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, auto_offset_reset="earliest", **client_kwargs(kafka_settings)
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), timeout=scaled_s(40))
        finally:
            await consumer.stop()
        return record.timestamp, record.timestamp_type

    before_ms = int(time.time() * 1000)
    timestamp_ms, timestamp_type = asyncio.run(produce_and_read())

    assert timestamp_type == LOG_APPEND_TIME
    assert timestamp_ms >= before_ms - 60_000


def test_an_existing_topic_with_another_partition_count_is_an_error(
    kafka_settings: KafkaSettings,
) -> None:
    fewer = dataclasses.replace(kafka_settings, events_partitions=3)

    with pytest.raises(BrokerError, match="has 8 partitions, configuration says 3"):
        create_topics(fewer)


def test_an_unreachable_broker_is_a_one_line_broker_error(free_port: int) -> None:
    settings = KafkaSettings(bootstrap=f"127.0.0.1:{free_port}")

    with pytest.raises(BrokerError, match=f"unreachable or failing at 127.0.0.1:{free_port}"):
        create_topics(settings)
