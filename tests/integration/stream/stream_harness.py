"""Helpers of the streaming integration tests: produce events, run workers, collect outputs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import murmur2

from fairuse.kafka import client_kwargs
from fairuse.records import OutputRecord
from fairuse.settings import KafkaSettings
from fairuse.topics import consumer_lag, describe_topics_async
from kafka_support import scaled_s

REPO_ROOT = Path(__file__).resolve().parents[3]
FAIRUSE = [sys.executable, "-m", "fairuse"]
OUTPUT_TOPICS = ("usage", "violations", "enforcement", "dead-letter", "statements")


def wait_for(
    condition: Callable[[], Any],
    timeout_s: float,
    what: str,
    every_s: float = 0.2,
    explain: Callable[[], str] = lambda: "",
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout_s`` (scaled)."""
    timeout_s = scaled_s(timeout_s)
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what} {explain()}")
        time.sleep(every_s)


def key_of(payload: bytes) -> bytes:
    """The record key the recorder would use: the payload's tenant id, if it has one."""
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return b""
    tenant = obj.get("tenant_id") if isinstance(obj, dict) else None
    return tenant.encode() if isinstance(tenant, str) else b""


PRODUCE_TIMEOUT_MS = int(scaled_s(40) * 1000)
"""How long the harness's producers wait for a full buffer or a broker's answer: aiokafka's
40 s default, scaled for a busy machine (a test producing 300,000 events must not give up)."""


def produce(kafka: KafkaSettings, payloads: Iterable[bytes], topic: str = "events") -> int:
    """Produce ``payloads`` to ``topic`` (the events topic) keyed by tenant, in order; return
    the count."""

    async def run() -> int:
        producer = AIOKafkaProducer(
            acks="all",
            linger_ms=5,
            max_request_size=2**21,
            request_timeout_ms=PRODUCE_TIMEOUT_MS,
            **client_kwargs(kafka),
        )
        await producer.start()
        try:
            pending = [
                await producer.send(kafka.topic(topic), payload, key=key_of(payload))
                for payload in payloads
            ]
            await asyncio.gather(*pending)
        finally:
            await producer.stop()
        return len(pending)

    return asyncio.run(run())


def produce_batches(kafka: KafkaSettings, records: Iterable[tuple[str, int, bytes, bytes]]) -> int:
    """Produce ``(topic, partition, key, value)`` records to any topics, in whole batches per
    partition, in order per partition; return the count."""

    async def run() -> int:
        producer = AIOKafkaProducer(
            acks="all", linger_ms=20, request_timeout_ms=PRODUCE_TIMEOUT_MS, **client_kwargs(kafka)
        )
        await producer.start()
        count, pending, open_batches = 0, [], {}
        try:
            for topic, partition, key, value in records:
                builder = open_batches.setdefault((topic, partition), producer.create_batch())
                if builder.append(key=key, value=value, timestamp=None) is None:
                    pending.append(await producer.send_batch(builder, topic, partition=partition))
                    builder = open_batches[topic, partition] = producer.create_batch()
                    builder.append(key=key, value=value, timestamp=None)
                count += 1
            for (topic, partition), builder in open_batches.items():
                pending.append(await producer.send_batch(builder, topic, partition=partition))
            await asyncio.gather(*pending)
        finally:
            await producer.stop()
        return count

    return asyncio.run(run())


def call_stored(tenant: str, n: int, ts: int, width: int = 0) -> bytes:
    """A ``call_stored`` event of ``tenant`` (event id ``{tenant}-stored-{n}``, call id
    ``recording-{n}``), both ids padded with ``x`` to ``width`` characters."""
    event_id, call_id = f"{tenant}-stored-{n}", f"recording-{n:08d}"
    return orjson.dumps(
        {
            "type": "call_stored",
            "event_id": event_id.ljust(width, "x"),
            "tenant_id": tenant,
            "ts": ts,
            "call_id": call_id.ljust(width, "x"),
        }
    )


def partition_of(tenant: str, partitions: int) -> int:
    """The events partition of ``tenant`` (the producer's default partitioner)."""
    return (murmur2(tenant.encode()) & 0x7FFFFFFF) % partitions


def read_lines(path: Path) -> list[bytes]:
    """The lines of an NDJSON file as payloads."""
    return [line for line in path.read_bytes().split(b"\n") if line]


async def partitions_of(kafka: KafkaSettings, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic`` (which must exist)."""
    count = (await describe_topics_async(kafka, [topic]))[topic]
    return [TopicPartition(topic, p) for p in range(count)]


def end_offsets(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    """Latest offset of every partition of ``topic``."""

    async def run() -> dict[int, int]:
        consumer = AIOKafkaConsumer(**client_kwargs(kafka))
        await consumer.start()
        try:
            tps = await partitions_of(kafka, topic)
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
        return {tp.partition: offset for tp, offset in ends.items()}

    return asyncio.run(run())


def published(kafka: KafkaSettings, name: str) -> int:
    """How many records the topic ``name`` holds now (committed or not)."""
    return sum(end_offsets(kafka, kafka.topic(name)).values())


def lag(kafka: KafkaSettings, group: str) -> str:
    """Per-partition lag of ``group`` on the events topic, for failure messages."""
    return f"(lag {consumer_lag(kafka, group, kafka.topic('events'))})"


def caught_up(kafka: KafkaSettings, group: str) -> bool:
    """Whether ``group`` committed every events partition up to its end (outputs then flushed)."""
    return not any(consumer_lag(kafka, group, kafka.topic("events")).values())


def by_topic(records: Iterable[OutputRecord]) -> dict[str, list]:
    """Core records as JSON objects per output topic name (``usage`` ...), like consume_all."""
    found: dict[str, list] = {name: [] for name in OUTPUT_TOPICS}
    for record in records:
        found[record.TOPIC.removeprefix("fairuse.")].append(record.to_dict())
    return found


def consume_all(
    kafka: KafkaSettings,
    names: Iterable[str] = OUTPUT_TOPICS,
    isolation_level: str = "read_committed",
) -> dict[str, list]:
    """Every record now on the given output topics, decoded, per topic name (``usage`` ...);
    by default only committed ones, as billing and the sink read them."""

    async def run() -> dict[str, list]:
        consumer = AIOKafkaConsumer(
            enable_auto_commit=False, isolation_level=isolation_level, **client_kwargs(kafka)
        )
        await consumer.start()
        found: dict[str, list] = {}
        try:
            for name in names:
                tps = await partitions_of(kafka, kafka.topic(name))
                consumer.assign(tps)
                await consumer.seek_to_beginning(*tps)
                ends = await consumer.end_offsets(tps)  # the last stable offsets when committed
                records: list = []
                while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                    batches = await consumer.getmany(timeout_ms=500)
                    for messages in batches.values():
                        records += [orjson.loads(m.value) for m in messages]
                found[name] = records
        finally:
            await consumer.stop()
        return found

    return asyncio.run(run())


def replay(events: Path, tmp: Path, policy: Path | None = None) -> dict[str, list]:
    """``fairuse replay --usage`` of ``events``: the records per output topic name."""
    out = tmp / "replay.ndjson"
    command = [*FAIRUSE, "replay", str(events), "--usage", "--out", str(out)]
    if policy is not None:
        command += ["--policy", str(policy)]
    subprocess.run(command, check=True, capture_output=True, cwd=REPO_ROOT)
    found: dict[str, list] = {name: [] for name in OUTPUT_TOPICS}
    for line in read_lines(out):
        record = orjson.loads(line)
        found[record.pop("topic").removeprefix("fairuse.")].append(record)
    return found


def comparable(records: dict[str, list]) -> dict[str, list]:
    """Records as sorted canonical JSON per topic; dead letters without source-derived fields."""
    result = {}
    for name, items in records.items():
        rows = []
        for record in items:
            if name == "dead-letter":
                record = {k: v for k, v in record.items() if k not in ("source", "dead_letter_id")}
            rows.append(orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode())
        result[name] = sorted(rows)
    return result


RECORD_ID = {
    "violations": lambda r: r["violation_id"],
    "enforcement": lambda r: r["enforcement_id"],
    "dead-letter": lambda r: r["dead_letter_id"],
    "usage": lambda r: (r["event_id"], r["session_id"], r["metric"], r["day"]),
    "statements": lambda r: r.get("adjustment_id") or r["statement_id"],
}


def differences(got: dict[str, list], expected: dict[str, list]) -> str:
    """Per topic, how many records are missing and how many are extra, with an example each."""
    lines = []
    mine, theirs = comparable(got), comparable(expected)
    for name in sorted(mine.keys() | theirs.keys()):
        missing = sorted(set(theirs.get(name, [])) - set(mine.get(name, [])))
        extra = sorted(set(mine.get(name, [])) - set(theirs.get(name, [])))
        if missing or extra:
            lines.append(
                f"{name}: {len(missing)} missing {missing[:1]}, {len(extra)} extra {extra[:1]}"
            )
    return "\n".join(lines)


def repeated_ids(records: dict[str, list]) -> dict[str, list]:
    """Per topic, the record ids that occur more than once (none, with exactly-once)."""
    found: dict[str, list] = {}
    for name, items in records.items():
        seen: set[object] = set()
        found[name] = [i for i in map(RECORD_ID[name], items) if i in seen or seen.add(i)]
    return {name: ids for name, ids in found.items() if ids}


@dataclass
class WorkerProcess:
    """A ``fairuse worker`` subprocess with its own log file."""

    kafka: KafkaSettings
    app_id: str
    web_port: int
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    starts: int = 0
    preexec: Callable[[], None] | None = None  # run in the child before exec (resource limits)

    @property
    def log_path(self) -> Path:
        return self.workdir / f"worker-{self.web_port}-{self.starts}.log"

    def start(self, *extra_args: str) -> WorkerProcess:
        """Start the worker (again)."""
        self.starts += 1
        env = dict(os.environ)
        env.update(
            FAIRUSE_KAFKA_BOOTSTRAP=self.kafka.bootstrap,
            FAIRUSE_KAFKA_TOPIC_PREFIX=self.kafka.topic_prefix,
            FAIRUSE_KAFKA_EVENTS_PARTITIONS=str(self.kafka.events_partitions),
            FAIRUSE_DATA_DIR=str(self.workdir / "var"),
            FAIRUSE_WORKER_APP_ID=self.app_id,
            FAIRUSE_WORKER_WEB_PORT=str(self.web_port),
            FAIRUSE_WORKER_EXPIRY_INTERVAL_S="2",
            FAIRUSE_WORKER_SESSION_TIMEOUT_S="6",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.env)  # the test's settings win over the defaults above
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [*FAIRUSE, "worker", "--loglevel", "info", *extra_args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            preexec_fn=self.preexec,
        )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye to the group."""
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after ``scaled_s(30)``)."""
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=scaled_s(30))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def pause(self) -> None:
        """SIGSTOP: the worker neither heartbeats nor rejoins its group until :meth:`resume`."""
        assert self.process is not None and self.alive()
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def kill_when(
    worker: WorkerProcess, reached: Callable[[], bool], what: str, every_s: float = 0.05
) -> None:
    """Start ``worker``, SIGKILL it once ``reached()``; it must have lived until then."""
    worker.start()
    wait_for(lambda: reached() or not worker.alive(), 600, what, every_s=every_s)
    assert worker.alive(), worker.log_tail()
    worker.kill()


def run_until_caught_up(
    kafka: KafkaSettings, worker: WorkerProcess, what: str = "the restarted worker"
) -> None:
    """Start ``worker`` and wait until its group has committed every event; it must be alive."""
    worker.start()
    wait_for(
        lambda: caught_up(kafka, worker.app_id),
        600,
        what,
        explain=lambda: lag(kafka, worker.app_id) + worker.log_tail(),
    )
    assert worker.alive(), worker.log_tail()


def stallable_env() -> dict[str, str]:
    """Settings of a worker its group waits for long (scaled, 100 s unscaled) once it stops
    heartbeating: the session timeout, and Faust's own rebalance and request timeouts (its
    ``BROKER_*`` variables; the session timeout may not exceed the request timeout)."""
    stall_s = int(scaled_s(100))
    return {
        "FAIRUSE_WORKER_SESSION_TIMEOUT_S": str(stall_s),
        "BROKER_REBALANCE_TIMEOUT": str(stall_s),
        "BROKER_REQUEST_TIMEOUT": str(stall_s + 30),
    }


@contextmanager
def joining_a_stalled_group(stalled: WorkerProcess, joining: WorkerProcess) -> Iterator[None]:
    """Pause ``stalled`` (a running worker started with :func:`stallable_env`, which owns its
    partitions), then start ``joining`` in its group: the rebalance its join begins waits for
    ``stalled`` to rejoin, so ``joining`` has no partition assignment and knows no owner.
    The block runs once ``joining``'s web server answers; afterwards ``stalled`` resumes and the
    rebalance completes."""
    stalled.pause()
    try:
        joining.start()
        wait_for(
            lambda: http_get(joining.web_port, "/healthz")[0] or not joining.alive(),
            120,
            "the joining worker's web server",
            every_s=0.05,
            explain=joining.log_tail,
        )
        assert joining.alive(), joining.log_tail()
        yield
    finally:
        stalled.resume()


def http_get(port: int, path: str, token: str | None = None) -> tuple[int, Any]:
    """``GET http://127.0.0.1:{port}{path}``: status and decoded JSON body (None if not JSON)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=scaled_s(20)) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except OSError:
        return 0, None
    try:
        return status, orjson.loads(body)
    except orjson.JSONDecodeError:
        return status, None


def assert_exactly_as_replay(kafka: KafkaSettings, expected: dict[str, list]) -> None:
    """A read_committed reader of every output topic sees each record id once, and the records
    replay of the same events makes."""
    got = consume_all(kafka)
    repeats = repeated_ids(got)
    assert not repeats, {name: (len(ids), ids[:3]) for name, ids in repeats.items()}
    assert comparable(got) == comparable(expected), differences(got, expected)
