"""The RocksDB store (``FAIRUSE_WORKER_STORE=rocksdb://``): a restarted worker recovers from its
local store plus the changelog's tail, or from the whole changelog when the store is gone."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from stream_harness import (
    assert_exactly_as_replay,
    caught_up,
    end_offsets,
    lag,
    produce,
    read_lines,
    replay,
    wait_for,
)

from fairuse.kafka import client_kwargs
from fairuse.settings import KafkaSettings

ROCKSDB = {"FAIRUSE_WORKER_STORE": "rocksdb://"}


def delete_all_records(kafka: KafkaSettings, topic: str) -> None:
    """Empty every partition of the compacted ``topic`` (records can only be deleted from a
    topic with the ``delete`` cleanup policy, so it gets that one)."""
    ends = end_offsets(kafka, topic)

    async def run() -> None:
        admin = AIOKafkaAdminClient(**client_kwargs(kafka))
        await admin.start()
        try:
            policy = {"cleanup.policy": "delete"}
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, policy)])
            await admin.delete_records(
                {TopicPartition(topic, p): RecordsToDelete(end) for p, end in ends.items() if end}
            )
        finally:
            await admin.close()

    asyncio.run(run())


def run_in_two_halves(kafka: KafkaSettings, worker, events: Path, between) -> None:
    lines = read_lines(events)
    half = len(lines) // 2
    produce(kafka, lines[:half])
    worker.start()
    wait_for(
        lambda: caught_up(kafka, worker.app_id),
        600,
        "the first half",
        explain=lambda: lag(kafka, worker.app_id) + worker.log_tail(),
    )
    worker.kill()
    between()
    produce(kafka, lines[half:])
    worker.start()
    wait_for(
        lambda: caught_up(kafka, worker.app_id),
        600,
        "the second half",
        explain=lambda: lag(kafka, worker.app_id) + worker.log_tail(),
    )
    assert worker.alive(), worker.log_tail()


def test_restart_recovers_from_the_local_store_not_the_whole_changelog(
    kafka_settings: KafkaSettings, workers, simulated_events: Path, tmp_path: Path
) -> None:
    """The changelog is emptied while the worker is down: only its local store still holds
    the state, and the second half's records are still right."""
    expected = replay(simulated_events, tmp_path)
    worker = workers(**ROCKSDB)
    changelog = f"{worker.app_id}-tenants-changelog"
    run_in_two_halves(
        kafka_settings,
        worker,
        simulated_events,
        lambda: delete_all_records(kafka_settings, changelog),
    )
    assert any((worker.workdir / "var" / "worker" / worker.app_id).rglob("*.db"))
    assert_exactly_as_replay(kafka_settings, expected)


def test_restart_without_the_local_store_recovers_from_the_changelog(
    kafka_settings: KafkaSettings, workers, simulated_events: Path, tmp_path: Path
) -> None:
    expected = replay(simulated_events, tmp_path)
    worker = workers(**ROCKSDB)
    store = worker.workdir / "var" / "worker" / worker.app_id
    run_in_two_halves(kafka_settings, worker, simulated_events, lambda: shutil.rmtree(store))
    assert_exactly_as_replay(kafka_settings, expected)
