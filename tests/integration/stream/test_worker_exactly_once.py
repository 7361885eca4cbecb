"""Exactly-once delivery: zombies are fenced, paused workers duplicate nothing, and the sink's
daily rollup (fed by every insert) equals the deduplicated usage after SIGKILLs."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from stream_harness import (
    FAIRUSE,
    REPO_ROOT,
    assert_exactly_as_replay,
    caught_up,
    consume_all,
    kill_when,
    lag,
    produce,
    read_lines,
    replay,
    run_until_caught_up,
    wait_for,
)

from fairuse.kafka import client_kwargs
from fairuse.settings import KafkaSettings
from fairuse.warehouse.store import Reader


def test_a_zombie_producer_is_fenced_by_the_new_owner(
    kafka_settings: KafkaSettings, workers, simulated_events: Path, tmp_path: Path
) -> None:
    """A previous owner of events partition 0, mid-transaction, cannot commit once a worker
    took the partition over; its record never reaches a read_committed reader."""
    worker = workers()

    async def open_zombie_transaction() -> AIOKafkaProducer:
        zombie = AIOKafkaProducer(
            transactional_id=f"{worker.app_id}.events-0", **client_kwargs(kafka_settings)
        )
        await zombie.start()
        await zombie.begin_transaction()
        await zombie.send_and_wait(kafka_settings.topic("usage"), b'{"zombie": true}', key=b"z")
        return zombie

    async def try_commit(zombie: AIOKafkaProducer) -> BaseException | None:
        try:
            await zombie.commit_transaction()
        except KafkaError as exc:
            return exc
        finally:
            await zombie.stop()
        return None

    loop = asyncio.new_event_loop()
    try:
        zombie = loop.run_until_complete(open_zombie_transaction())
        expected = replay(simulated_events, tmp_path)
        produce(kafka_settings, read_lines(simulated_events))
        worker.start()
        wait_for(
            lambda: caught_up(kafka_settings, worker.app_id),
            600,
            "the worker",
            explain=lambda: lag(kafka_settings, worker.app_id) + worker.log_tail(),
        )
        refused = loop.run_until_complete(try_commit(zombie))
    finally:
        loop.close()
    assert refused is not None, "the zombie's transaction was committed"
    assert worker.alive(), worker.log_tail()
    assert_exactly_as_replay(kafka_settings, expected)


def test_paused_worker_past_its_session_is_fenced_and_duplicates_nothing(
    kafka_settings: KafkaSettings, workers, simulated_events: Path, tmp_path: Path
) -> None:
    """SIGSTOP one of two workers mid-stream; the other takes its partitions over; SIGCONT:
    the paused one's batch in flight is refused, and both go on."""
    expected = replay(simulated_events, tmp_path)
    first, second = workers().start(), workers().start()
    lines = read_lines(simulated_events)
    half = len(lines) // 2
    produce(kafka_settings, lines[:half])
    wait_for(lambda: caught_up(kafka_settings, first.app_id), 600, "both workers on half")
    produce(kafka_settings, lines[half:])
    first.pause()
    try:
        wait_for(
            lambda: caught_up(kafka_settings, second.app_id),
            600,
            "the running worker to take over",
            explain=lambda: lag(kafka_settings, second.app_id) + second.log_tail(),
        )
    finally:
        first.resume()
    assert first.alive() and second.alive(), first.log_tail() + second.log_tail()
    assert_exactly_as_replay(kafka_settings, expected)


def test_after_sigkills_the_sinks_daily_rollup_equals_usage_final(
    kafka_settings: KafkaSettings, workers, simulated_events: Path, tmp_path: Path
) -> None:
    kills = 2
    expected = replay(simulated_events, tmp_path)
    produce(kafka_settings, read_lines(simulated_events))
    worker = workers()
    for kill in range(kills):
        target = (kill + 1) / (kills + 1) * len(expected["usage"])
        kill_when(
            worker,
            lambda t=target: len(consume_all(kafka_settings, ["usage"])["usage"]) >= t,
            f"{target:.0f} usage records",
            every_s=0.5,
        )
    run_until_caught_up(kafka_settings, worker)
    assert_exactly_as_replay(kafka_settings, expected)
    env = {
        **os.environ,
        "FAIRUSE_KAFKA_BOOTSTRAP": kafka_settings.bootstrap,
        "FAIRUSE_KAFKA_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "FAIRUSE_DATA_DIR": str(tmp_path / "sink"),
    }
    env.pop("FAIRUSE_WAREHOUSE_DSN", None)
    sink = subprocess.run(
        [*FAIRUSE, "sink", "--idle-exit", "3"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert sink.returncode == 0, sink.stdout + sink.stderr
    reader = Reader(f"chdb://{tmp_path / 'sink' / 'warehouse'}")
    try:
        final = reader.query(
            "SELECT tenant_id, toString(day), metric, count(), round(sum(weighted_ms)) "
            "FROM usage FINAL GROUP BY tenant_id, day, metric ORDER BY 1, 2, 3"
        ).rows
        daily = reader.query(
            "SELECT tenant_id, toString(day), metric, sum(accruals), round(sum(weighted_ms)) "
            "FROM usage_daily GROUP BY tenant_id, day, metric ORDER BY 1, 2, 3"
        ).rows
    finally:
        reader.close()
    assert daily == final
