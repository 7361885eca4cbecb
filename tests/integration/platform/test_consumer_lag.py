"""consumer_lag / `fairuse topics lag`: what a consumer group still has to process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from fairuse.kafka import client_kwargs
from fairuse.settings import KafkaSettings
from fairuse.topics import consumer_lag


async def _produce(settings: KafkaSettings, count: int) -> None:
    producer = AIOKafkaProducer(**client_kwargs(settings))
    await producer.start()
    try:
        for i in range(count):
            await producer.send(settings.topic("events"), b"{}", key=f"tenant-{i % 3}".encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _consume_and_commit(settings: KafkaSettings, group: str, count: int) -> None:
    consumer = AIOKafkaConsumer(
        settings.topic("events"),
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **client_kwargs(settings),
    )
    await consumer.start()
    try:
        seen = 0
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000)
            seen += sum(len(records) for records in batches.values())
        await consumer.commit()
    finally:
        await consumer.stop()


def _lag_cli(settings: KafkaSettings, group: str, *extra: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "FAIRUSE_KAFKA_BOOTSTRAP": settings.bootstrap,
        "FAIRUSE_KAFKA_TOPIC_PREFIX": settings.topic_prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "fairuse", "topics", "lag", "--group", group, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_group_that_never_ran_lags_by_the_whole_topic(kafka_settings: KafkaSettings) -> None:
    asyncio.run(_produce(kafka_settings, 30))

    lag = consumer_lag(kafka_settings, "nobody-yet", kafka_settings.topic("events"))

    assert sum(lag.values()) == 30
    assert set(lag) == set(range(kafka_settings.events_partitions))


def test_lag_is_zero_once_the_group_committed_everything(kafka_settings: KafkaSettings) -> None:
    asyncio.run(_produce(kafka_settings, 30))
    asyncio.run(_consume_and_commit(kafka_settings, "reader", 30))
    asyncio.run(_produce(kafka_settings, 5))

    assert sum(consumer_lag(kafka_settings, "reader", kafka_settings.topic("events")).values()) == 5


def test_cli_wait_fails_with_the_remaining_lag(kafka_settings: KafkaSettings) -> None:
    asyncio.run(_produce(kafka_settings, 7))

    behind = _lag_cli(kafka_settings, "idle-group", "--wait", "1")
    asyncio.run(_consume_and_commit(kafka_settings, "idle-group", 7))
    caught_up = _lag_cli(kafka_settings, "idle-group", "--wait", "30")

    assert behind.returncode == 2
    assert "still has 7 records" in behind.stderr
    assert caught_up.returncode == 0, caught_up.stderr
    assert "lag=0" in caught_up.stdout
