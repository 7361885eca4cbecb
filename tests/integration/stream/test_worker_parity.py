"""End to end: the worker's outputs equal ``fairuse replay``'s for the simulator's events."""

from __future__ import annotations

import collections
from pathlib import Path

from stream_harness import (
    caught_up,
    comparable,
    consume_all,
    produce,
    read_lines,
    replay,
    wait_for,
)

from fairuse.settings import KafkaSettings


def test_outputs_equal_replay(
    kafka_settings: KafkaSettings, workers, simulated_events: Path, tmp_path: Path
) -> None:
    expected = replay(simulated_events, tmp_path)
    assert expected["violations"] and expected["enforcement"] and expected["dead-letter"]
    produce(kafka_settings, read_lines(simulated_events))
    worker = workers().start()

    wait_for(
        lambda: caught_up(kafka_settings, worker.app_id) or not worker.alive(),
        180,
        "the worker to commit every event",
    )
    assert worker.alive(), worker.log_tail()
    got = consume_all(kafka_settings)

    # A clean run publishes each record exactly once, in the replay's contents.
    assert comparable(got) == comparable(expected)
    sources = collections.Counter(d["source"].rsplit("/", 2)[0] for d in got["dead-letter"])
    assert sources == {kafka_settings.topic("events"): len(expected["dead-letter"])}
