"""The sink on the real broker into chDB: every record lands exactly once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

from crashing_sink import CRASH_EXIT_CODE
from warehouse_support import DataSet, mixed, produce, wait_until

from fairuse.settings import KafkaSettings, OpsSettings, Settings, WarehouseSettings
from fairuse.topics import consumer_lag
from fairuse.warehouse.client import connect
from fairuse.warehouse.migrate import migrate
from fairuse.warehouse.owner import read_owner
from fairuse.warehouse.sink import run_sink
from fairuse.warehouse.store import Reader
from kafka_support import scaled_s

COUNTS = {
    "events": "SELECT count() FROM events",
    "usage": "SELECT count() FROM usage FINAL",
    "violations": "SELECT count() FROM violations FINAL",
    "enforcement": "SELECT count() FROM enforcement FINAL",
    "dead_letters": "SELECT count() FROM dead_letters FINAL",
}


def _counts(reader: Reader) -> dict[str, int]:
    return {name: int(reader.query(sql).rows[0][0]) for name, sql in COUNTS.items()}


def _expected(data: DataSet) -> dict[str, int]:
    return {
        "events": data.events,
        "usage": data.usage,
        "violations": data.violations,
        "enforcement": data.enforcement,
        "dead_letters": data.dead_letters,
    }


def test_sink_stores_every_record_once(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    data = mixed("a")
    produce(kafka_settings, data.messages)
    settings = Settings(
        kafka=kafka_settings,
        data_dir=tmp_path,
        warehouse=WarehouseSettings(sink_batch_rows=25, sink_batch_ms=200),
        ops=OpsSettings(sink_web_port=0),
    )

    async def main() -> dict[str, int]:
        stop = asyncio.Event()
        task = asyncio.create_task(run_sink(settings, stop, group_id=f"g-{uuid.uuid4().hex}"))
        reader = None
        deadline = asyncio.get_running_loop().time() + 90
        try:
            while True:
                assert not task.done(), task.exception() if task.done() else ""
                if reader is None and (tmp_path / "warehouse.owner.json").exists():
                    # the sink advertises its query service once the store is migrated
                    reader = Reader(settings.resolved_warehouse_dsn)
                if reader is not None:
                    counts = await asyncio.to_thread(_counts, reader)
                    if counts == _expected(data):
                        break
                assert asyncio.get_running_loop().time() < deadline, counts
                await asyncio.sleep(0.2)
        finally:
            stop.set()
            sink = await task
            if reader is not None:
                reader.close()
        assert sink is not None and sink.committed_messages == len(data.messages)
        return counts

    assert asyncio.run(main()) == _expected(data)
    reader = Reader(Settings(data_dir=tmp_path).resolved_warehouse_dsn)
    try:
        # A violation published twice is one row; events are plain MergeTree: no FINAL needed.
        rows = reader.query("SELECT count(), uniqExact(violation_id) FROM violations FINAL").rows
        assert rows == [[data.violations, data.violations]]
        origins = reader.query(
            "SELECT origin, count() FROM dead_letters FINAL GROUP BY origin ORDER BY origin"
        ).rows
        assert origins == [["core", 2], ["sink", 4]]
        typed = reader.query(
            "SELECT type, media, ts FROM events WHERE event_id = {id:String}", {"id": "a-e3"}
        ).rows
        assert typed == [["session_started", "video", "2026-11-02 00:00:03.000"]]
    finally:
        reader.close()


def _owner_pid(data_dir: Path) -> int | None:
    owner = read_owner(data_dir / "warehouse")
    return owner.pid if owner else None


class SinkProcess:
    """A sink subprocess writing its output to ``sink-<n>.log`` in its data directory (the test's
    ``tmp_path``, which ``deploy/test.sh`` keeps when the test fails)."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self, timeout_s: float) -> tuple[int, str]:
        """Wait for the exit (at most ``timeout_s``, scaled); its exit code and its log."""
        returncode = self.process.wait(timeout=scaled_s(timeout_s))
        return returncode, self.log.read_text(errors="replace")

    def stop(self, kill: bool = False) -> tuple[int, str]:
        """SIGTERM (SIGKILL if ``kill``) unless it ended; its exit code and its log."""
        if self.process.poll() is None and kill:
            self.process.kill()
        elif self.process.poll() is None:
            self.process.terminate()
        return self.output(60)


def _sink_process(
    kafka: KafkaSettings,
    data_dir: Path,
    group: str,
    *args: str,
    command: tuple[str, ...] = ("-m", "fairuse", "sink", "--group"),
    **extra: str,
) -> SinkProcess:
    env = {
        **os.environ,
        "FAIRUSE_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "FAIRUSE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "FAIRUSE_DATA_DIR": str(data_dir),
        "FAIRUSE_SINK_BATCH_ROWS": "1000",
        "FAIRUSE_SINK_BATCH_MS": "300",
        "FAIRUSE_SINK_WEB_PORT": "0",
        **extra,
    }
    env.pop("FAIRUSE_WAREHOUSE_DSN", None)
    log = data_dir / f"sink-{len(list(data_dir.glob('sink-*.log'))) + 1}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *command, group, *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return SinkProcess(process, log)


def test_sink_killed_between_insert_and_commit_stores_once(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    group = f"g-{uuid.uuid4().hex}"
    first = mixed("b", events=30, partition=0)
    produce(kafka_settings, first.messages)
    # Run 1 dies right after inserting its first flush, before committing any offset.
    script = str(Path(__file__).with_name("crashing_sink.py"))
    crashed = _sink_process(kafka_settings, tmp_path, group, command=(script,))
    returncode, out = crashed.output(120)
    assert returncode == CRASH_EXIT_CODE, out
    client = connect(f"chdb://{tmp_path / 'warehouse'}")
    try:
        stored_before = client.query("SELECT count() FROM events").result_rows[0][0]
    finally:
        client.close()
    assert stored_before > 0, "the crashed run inserted nothing: the test would prove nothing"
    # More records arrive while the sink is down: a naive restart would cut different batches.
    second = mixed("c", events=50, partition=0)
    produce(kafka_settings, second.messages)
    restarted = _sink_process(kafka_settings, tmp_path, group)
    expected = {k: v + _expected(second)[k] for k, v in _expected(first).items()}
    try:
        wait_until(lambda: _owner_pid(tmp_path) == restarted.pid, 60, "the owner file")
        reader = Reader(f"chdb://{tmp_path / 'warehouse'}")
        assert reader.via_owner is not None and reader.via_owner.pid == restarted.pid
        wait_until(lambda: _counts(reader) == expected, 90, f"counts {expected}")
    except BaseException:
        print("counts:", _counts(reader))
        raise
    finally:
        returncode, out = restarted.stop()
    assert returncode == 0, out
    assert "replaying" in out, out
    reader = Reader(f"chdb://{tmp_path / 'warehouse'}")
    try:
        assert reader.via_owner is None
        assert _counts(reader) == expected
        dupes = reader.query(
            "SELECT count() FROM (SELECT event_id FROM events GROUP BY event_id HAVING count() > 1)"
        ).rows
        assert dupes == [[0]]
        usage_daily = reader.query("SELECT sum(accruals) FROM usage_daily").rows
        assert usage_daily == [[expected["usage"]]]
    finally:
        reader.close()


def test_sink_sigkilled_mid_stream_loses_and_doubles_nothing(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    group = f"g-{uuid.uuid4().hex}"
    data = mixed("d", events=3000)
    produce(kafka_settings, data.messages)
    batch = {"FAIRUSE_SINK_BATCH_ROWS": "50", "FAIRUSE_SINK_BATCH_MS": "50"}
    victim = _sink_process(kafka_settings, tmp_path, group, **batch)
    try:
        wait_until(lambda: _owner_pid(tmp_path) == victim.pid, 60, "the owner file")
        reader = Reader(f"chdb://{tmp_path / 'warehouse'}")
        wait_until(lambda: _counts(reader)["events"] > 0, 60, "the first inserts")
    finally:
        victim.stop(kill=True)
    # The restarted sink stops by itself once everything is stored (what `make run` uses).
    restarted = _sink_process(kafka_settings, tmp_path, group, "--idle-exit", "3", **batch)
    try:
        returncode, out = restarted.output(180)
    finally:
        restarted.stop(kill=True)
    assert returncode == 0, out
    assert "everything committed: stopping" in out, out
    reader = Reader(f"chdb://{tmp_path / 'warehouse'}")
    try:
        assert _counts(reader) == _expected(data)
    finally:
        reader.close()


def test_a_schema_error_stops_the_sink_with_one_message_and_commits_nothing_past_it(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    group = f"g-{uuid.uuid4().hex}"
    data = mixed("s", events=40, partition=0)
    produce(kafka_settings, data.messages)
    client = connect(f"chdb://{tmp_path / 'warehouse'}")
    try:
        migrate(client, events_ttl_days=0)
        client.command("ALTER TABLE events DROP COLUMN call_id")  # the schema drifted
    finally:
        client.close()
    sink = _sink_process(kafka_settings, tmp_path, group)
    try:
        returncode, out = sink.output(180)
    finally:
        sink.stop(kill=True)
    assert returncode == 2, out
    halted = [line for line in out.splitlines() if line.startswith("fairuse sink: ")]
    assert len(halted) == 1, out
    assert "rejected the insert" in halted[0] and "into events" in halted[0], halted
    assert "partition 0, offsets 0-" in halted[0], halted
    assert "retrying" not in out  # not mistaken for a transient failure
    lag = consumer_lag(kafka_settings, group, kafka_settings.topic("events"))
    assert lag[0] == len([m for m in data.messages if m[0] == "events"])  # nothing committed
