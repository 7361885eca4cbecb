"""A tenant storing far more calls than one changelog record could hold, beside normal tenants.

300,000 ``call_stored`` events of one tenant come first on a partition it shares with a normal
tenant of the simulated fleet, with the worker's record bound set to 1 MiB (the previous version
kept every call id in one record and stopped at about 600,000 calls with the 16 MiB bound, after
slowing to a crawl). Every output equals ``fairuse replay``'s, and the worker catches up.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from stream_harness import (
    call_stored,
    caught_up,
    comparable,
    consume_all,
    partition_of,
    produce,
    replay,
    wait_for,
)

from fairuse.settings import KafkaSettings

CALLS = 300_000


def test_a_tenant_with_300k_stored_calls_and_its_neighbours_are_all_right(
    kafka_settings: KafkaSettings, workers, simulated_events: Path, tmp_path: Path
) -> None:
    fleet = simulated_events.read_bytes().split(b"\n")
    first = orjson.loads(fleet[0])
    partitions = kafka_settings.events_partitions
    neighbour = partition_of(first["tenant_id"], partitions)
    big = next(
        name for i in range(1000) if partition_of(name := f"hoarder-{i}", partitions) == neighbour
    )
    stored = [call_stored(big, i, first["ts"] + i) for i in range(CALLS)]
    events = tmp_path / "events.ndjson"
    events.write_bytes(b"\n".join(stored + fleet))
    expected = replay(events, tmp_path)
    assert any(v["tenant_id"] == big for v in expected["violations"])

    produce(kafka_settings, [line for line in events.read_bytes().split(b"\n") if line])
    worker = workers(FAIRUSE_WORKER_MAX_RECORD_BYTES=str(1024 * 1024)).start()
    wait_for(
        lambda: caught_up(kafka_settings, worker.app_id) or not worker.alive(),
        900,
        "the worker to commit every event",
        every_s=2,
    )
    assert worker.alive(), worker.log_tail()
    assert comparable(consume_all(kafka_settings)) == comparable(expected)
