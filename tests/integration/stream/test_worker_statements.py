"""Statements and adjustments in streaming: a worker SIGKILLed mid-stream and restarted publishes
exactly the statements and adjustments replay makes, each once, in the outputs' transaction."""

from __future__ import annotations

from pathlib import Path

import orjson
from stream_harness import (
    assert_exactly_as_replay,
    kill_when,
    produce,
    published,
    read_lines,
    replay,
    run_until_caught_up,
)

from fairuse.settings import KafkaSettings

NOV_2 = 1_793_577_600_000  # 2026-11-02T00:00:00Z, the simulation's first day
HOUR = 3_600_000
DAY = 24 * HOUR


LATE = (  # November events that arrive after November closed
    {"type": "api_call", "ts": NOV_2 + 10 * HOUR, "count": 7},
    {"type": "session_started", "ts": NOV_2 + 18 * DAY, "session_id": "late",
     "user_id": "late.user", "media": "audio"},
    {"type": "session_stopped", "ts": NOV_2 + 18 * DAY + 300_000, "session_id": "late"},
)  # fmt: skip


def late_events(lines: list[bytes]) -> list[bytes]:
    """For every simulated tenant, :data:`LATE`: api calls of its first day and a short
    recording in the month, each adjusting a statement (or stating a day first seen late)."""
    tenants = sorted({orjson.loads(line)["tenant_id"] for line in lines[:2000]})
    return [
        orjson.dumps({"event_id": f"{tenant}:late-{i}", "tenant_id": tenant, **event})
        for tenant in tenants
        for i, event in enumerate(LATE)
    ]


def test_statements_and_adjustments_across_a_sigkill_equal_replay(
    kafka_settings: KafkaSettings, workers, simulated_events: Path, tmp_path: Path
) -> None:
    lines = read_lines(simulated_events)
    lines += late_events(lines)
    events = tmp_path / "events.ndjson"
    events.write_bytes(b"\n".join(lines) + b"\n")
    expected = replay(events, tmp_path)
    kinds = [r["kind"] for r in expected["statements"]]
    assert kinds.count("statement") > 100 and kinds.count("adjustment") >= 6, kinds
    produce(kafka_settings, lines)
    worker = workers()
    kill_when(
        worker,
        lambda: published(kafka_settings, "statements") >= kinds.count("statement") / 2,
        "half of the statements",
    )
    run_until_caught_up(kafka_settings, worker)
    assert_exactly_as_replay(kafka_settings, expected)
