"""Crash safety: SIGKILL mid-stream, a broker restart, a worker handing over to another, a
zombie fenced. A ``read_committed`` reader sees every record exactly once, as replay makes it."""

from __future__ import annotations

from pathlib import Path

from stream_harness import (
    assert_exactly_as_replay,
    caught_up,
    kill_when,
    produce,
    published,
    read_lines,
    replay,
    run_until_caught_up,
    wait_for,
)

from fairuse.settings import KafkaSettings


def test_sigkill_mid_stream_then_restart_loses_and_doubles_nothing(
    kafka_settings: KafkaSettings, workers, simulated_events: Path, tmp_path: Path
) -> None:
    expected = replay(simulated_events, tmp_path)
    usage_total = len(expected["usage"])
    produce(kafka_settings, read_lines(simulated_events))
    worker = workers()
    for fraction in (0.25, 0.6):
        kill_when(
            worker,
            lambda f=fraction: published(kafka_settings, "usage") >= f * usage_total,
            f"{fraction:.0%} of the usage records",
        )
    run_until_caught_up(kafka_settings, worker)
    assert_exactly_as_replay(kafka_settings, expected)


def test_two_workers_split_partitions_and_hand_over_on_kill(
    kafka_settings: KafkaSettings, workers, simulated_events: Path, tmp_path: Path
) -> None:
    expected = replay(simulated_events, tmp_path)
    first, second = workers().start(), workers().start()
    lines = read_lines(simulated_events)
    half = len(lines) // 2
    produce(kafka_settings, lines[:half])
    wait_for(lambda: caught_up(kafka_settings, first.app_id), 600, "both workers on half")
    assert first.alive() and second.alive(), first.log_tail() + second.log_tail()
    produce(kafka_settings, lines[half:])
    first.kill()
    wait_for(lambda: caught_up(kafka_settings, second.app_id), 600, "the surviving worker")
    assert second.alive(), second.log_tail()
    assert_exactly_as_replay(kafka_settings, expected)


def test_broker_restart_mid_stream(
    broker_scripts, workers, simulated_events: Path, tmp_path: Path
) -> None:
    from fairuse.topics import create_topics

    started = broker_scripts.run("start")
    assert started.returncode == 0, started.stderr
    kafka = KafkaSettings(bootstrap=broker_scripts.bootstrap, topic_prefix="restart.")
    create_topics(kafka)
    expected = replay(simulated_events, tmp_path)
    produce(kafka, read_lines(simulated_events))
    worker = workers()
    worker.kafka = kafka
    worker.start()
    wait_for(
        lambda: published(kafka, "usage") >= 0.3 * len(expected["usage"]) or not worker.alive(),
        600,
        "a third of the usage records",
        every_s=0.05,
    )
    assert broker_scripts.run("stop").returncode == 0
    assert broker_scripts.run("start").returncode == 0
    wait_for(lambda: caught_up(kafka, worker.app_id), 600, "the worker after the restart")
    assert worker.alive(), worker.log_tail()
    assert_exactly_as_replay(kafka, expected)
