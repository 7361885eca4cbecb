"""Benchmark of the streaming worker against the real broker; prints figures.

1. Sustained throughput: events already on the topic -> all outputs published and offsets
   committed, for ``fairuse worker`` (a subprocess) and, in the same run, for a plain aiokafka
   consumer loop driving the same core through the same batch step (the no-framework ceiling:
   the same durable work, outputs, changelog records and offsets in the same transactions).
   Also the worker's changelog bytes (keys + values of the tenants changelog) per event.
2. Event -> violation latency p50/p99 at a steady produce rate (default 40 % of the ceiling):
   from the broker's append time of the event that triggered a violation to the moment a
   ``read_committed`` consumer receives the violation (its transaction committed).
Worker memory per 10,000 tenants and RocksDB recovery times: ``bench/recovery.py``.

    FAIRUSE_KAFKA_BOOTSTRAP=127.0.0.1:19092 .venv/bin/python bench/stream.py [--events 200000]
        [--skip aged,latency]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from fairuse.kafka import client_kwargs
from fairuse.policy import DEFAULT_POLICY
from fairuse.recorder.simulator import FleetConfig, simulate
from fairuse.settings import KafkaSettings, load_settings
from fairuse.stream.core import Inbound, StreamCore
from fairuse.stream.delivery import BatchDelivery, PartitionProducers
from fairuse.topics import create_topics_async

DAY_MS = 86_400_000
REPO = Path(__file__).resolve().parent.parent


def fleet(
    events: int, tenants: int, seed: int = 11, history_days: int = 0, breakers: float = 0.3
) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    """Simulated (key, payload) pairs of ``tenants`` tenants (the share ``breakers`` of them
    breaking a rule): the events of the first ``history_days`` days of event time, then
    ``events`` more."""
    config = FleetConfig(
        seed=seed, tenants=tenants, duration_ms=None, heartbeat_s=300, breaker_share=breakers
    )
    history: list[tuple[bytes, bytes]] = []
    found: list[tuple[bytes, bytes]] = []
    end = config.start_ms + history_days * DAY_MS
    for emission in simulate(config):
        pair = (emission.tenant_id.encode(), emission.payload)
        if emission.at < end:
            history.append(pair)
            continue
        found.append(pair)
        if len(found) == events:
            break
    return history, found


async def fresh(base: KafkaSettings) -> KafkaSettings:
    kafka = KafkaSettings(
        bootstrap=base.bootstrap,
        security_protocol=base.security_protocol,
        sasl_mechanism=base.sasl_mechanism,
        sasl_username=base.sasl_username,
        sasl_password=base.sasl_password,
        ssl_cafile=base.ssl_cafile,
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}.",
        events_partitions=base.events_partitions,
    )
    await create_topics_async(kafka)
    return kafka


async def produce(
    kafka: KafkaSettings, pairs: Iterable[tuple[bytes, bytes]], rate: float | None = None
) -> None:
    """Produce ``pairs`` to the events topic, at ``rate`` events/s if given."""
    producer = AIOKafkaProducer(acks="all", linger_ms=5, **client_kwargs(kafka))
    await producer.start()
    topic = kafka.topic("events")
    start = time.monotonic()
    pending = []
    try:
        for index, (key, payload) in enumerate(pairs):
            if rate and index % 100 == 0:
                delay = start + index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            pending.append(await producer.send(topic, payload, key=key))
            if len(pending) == 10_000:  # no pile of futures (and no long gather at the end)
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def lag(kafka: KafkaSettings, group: str) -> int:
    """Events the group has not committed yet."""
    topic = kafka.topic("events")
    admin = AIOKafkaAdminClient(**client_kwargs(kafka))
    consumer = AIOKafkaConsumer(**client_kwargs(kafka))
    await admin.start()
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(kafka.events_partitions)]
        ends = await consumer.end_offsets(tps)
        try:
            done = await admin.list_consumer_group_offsets(group)
        except Exception:  # the group does not exist yet
            done = {}
        return sum(
            end - (done[tp].offset if tp in done and done[tp].offset >= 0 else 0)
            for tp, end in ends.items()
        )
    finally:
        await consumer.stop()
        await admin.close()


def start_worker(
    kafka: KafkaSettings, app_id: str, workdir: Path, **extra: str
) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(extra)
    env.update(
        FAIRUSE_KAFKA_BOOTSTRAP=kafka.bootstrap,
        FAIRUSE_KAFKA_TOPIC_PREFIX=kafka.topic_prefix,
        FAIRUSE_KAFKA_EVENTS_PARTITIONS=str(kafka.events_partitions),
        FAIRUSE_DATA_DIR=str(workdir),
        FAIRUSE_WORKER_APP_ID=app_id,
        FAIRUSE_WORKER_WEB_PORT=str(free_port()),
    )
    log = (workdir / f"{app_id}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "fairuse", "worker"], env=env, stdout=log, stderr=log, cwd=REPO
    )


def free_port() -> int:
    """An unused port outside the kernel's ephemeral range (so no outgoing connection takes it
    before the worker binds it): the broker scripts' rule, ``kafka_free_port``."""
    script = REPO / "deploy" / "kafka" / "common.sh"
    picked = subprocess.run(
        ["bash", "-c", f'source "{script}" && kafka_free_port 1'],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(picked.stdout)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def wait_caught_up(
    kafka: KafkaSettings, group: str, total: int, worker: subprocess.Popen | None = None
) -> tuple[float, float]:
    """Poll until the group committed everything; (seconds from first progress, events then).
    Fails if ``worker`` exits meanwhile (no waiting forever on a dead worker)."""
    first: tuple[float, int] | None = None
    while True:
        if worker is not None and worker.poll() is not None:
            raise SystemExit(
                f"the worker exited with {worker.returncode}: its log is in the logs directory"
            )
        remaining = await lag(kafka, group)
        now = time.monotonic()
        if first is None and remaining < total:
            first = (now, total - remaining)
        if remaining == 0:
            assert first is not None
            return now - first[0], total - first[1]
        await asyncio.sleep(0.2)


@dataclass(frozen=True)
class WorkerRun:
    """Figures of one :func:`worker_throughput` run."""

    rate: float  # events/s of the measured events, from the first commit on
    changelog_per_event: float  # bytes of the tenants changelog written per measured event
    restart_s: float  # the restart before them: start to first commit (join, recovery)
    history_rate: float  # events/s of the history (0 without)


async def worker_throughput(base: KafkaSettings, history, pairs, workdir: Path) -> WorkerRun:
    """Events/s of ``pairs`` after the worker has processed ``history`` (restarted between,
    so it recovers the history's state from the changelog first), and the changelog bytes per
    event it wrote for ``pairs``."""
    kafka = await fresh(base)
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    changelog = f"{app_id}-tenants-changelog"
    history_rate = 0.0
    if history:
        await produce(kafka, history)
        worker = start_worker(kafka, app_id, workdir)
        try:
            seconds, events = await wait_caught_up(kafka, app_id, len(history), worker)
            history_rate = events / seconds
        finally:
            worker.kill()
            worker.wait()
    written_before = await changelog_bytes(kafka, changelog)
    await produce(kafka, pairs)
    started = time.monotonic()
    worker = start_worker(kafka, app_id, workdir)
    try:
        seconds, events = await wait_caught_up(kafka, app_id, len(pairs), worker)
        restart_s = time.monotonic() - started - seconds
    finally:
        worker.kill()
        worker.wait()
    written = await changelog_bytes(kafka, changelog) - written_before
    if not seconds:
        raise SystemExit(f"the worker took {len(pairs):,} events within one poll: raise --events")
    return WorkerRun(events / seconds, written / len(pairs), restart_s, history_rate)


async def changelog_bytes(kafka: KafkaSettings, topic: str) -> int:
    """Bytes of the keys and values of the committed records of ``topic`` (0 if absent)."""
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False, isolation_level="read_committed", **client_kwargs(kafka)
    )
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            return 0
        # a changelog is co-partitioned with the events topic
        tps = [TopicPartition(topic, p) for p in range(kafka.events_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        total = 0
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                total += sum(len(r.key or b"") + len(r.value or b"") for r in records)
        return total
    finally:
        await consumer.stop()


class DictTable(dict):
    """A dict store with the one table method :class:`BatchDelivery` applies writes through."""

    def apply_changelog_batch(self, batch) -> None:
        for record in batch:
            if record.value is None:
                self.pop(record.key, None)
            else:
                self[record.key] = record.value


async def ceiling_throughput(base: KafkaSettings, history, pairs) -> float:
    """Plain aiokafka loop, no Faust: fetch whole batches and hand them to the worker's own
    :class:`BatchDelivery` (same core, same transactions: outputs, changelog records,
    positions, offsets), with dicts as the stores; timed over ``pairs`` after ``history``."""
    kafka = await fresh(base)
    await produce(kafka, [*history, *pairs])
    topic = kafka.topic("events")
    group = f"ceiling-{uuid.uuid4().hex[:8]}"
    changelogs = [f"{group}-tenants-changelog", f"{group}-positions-changelog"]
    admin = AIOKafkaAdminClient(**client_kwargs(kafka))
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, kafka.events_partitions, 1) for name in changelogs]
        )
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False,
        max_poll_records=4000,
        isolation_level="read_committed",
        **client_kwargs(kafka),
    )
    await consumer.start()
    tenants = DictTable()
    core = StreamCore(DEFAULT_POLICY, kafka, tenants)
    tps = [TopicPartition(topic, p) for p in range(kafka.events_partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    producers = PartitionProducers(kafka, group, linger_ms=1, max_record_bytes=16 * 1024 * 1024)

    async def start_offsets() -> dict[int, int]:
        return {tp.partition: 0 for tp in tps}

    async def seek(partition: int, offset: int) -> None:
        consumer.seek(TopicPartition(topic, partition), offset)

    delivery = BatchDelivery(
        core,
        producers,
        topic,
        group,
        tenants,
        changelogs[0],
        DictTable(),
        changelogs[1],
        seek,
        start_offsets,
    )
    await delivery.rebalanced(set(range(kafka.events_partitions)))
    done, total = 0, len(history) + len(pairs)
    start, timed_from = time.monotonic(), 0
    try:
        while done < total:
            if not timed_from and done >= len(history):
                start, timed_from = time.monotonic(), max(done, 1)
            batches = await consumer.getmany(timeout_ms=200, max_records=4000)
            messages = [
                Inbound(m.value, tp.topic, tp.partition, m.offset)
                for tp, records in batches.items()
                for m in records
            ]
            if messages:
                done += await delivery.run(messages, delivery.generation)
        await delivery.settle()  # the last batch's transactions
    finally:
        await consumer.stop()
        await producers.close()
    return (total - (timed_from or 0)) / (time.monotonic() - start)


async def violation_latency(
    base: KafkaSettings, pairs, rate: float, workdir: Path
) -> list[tuple[float, float]]:
    """(milliseconds from the event's append to the ``read_committed`` receipt of the violation
    it triggered, seconds into the steady run) for each violation, at ``rate`` events/s. The
    worker has joined its group and the watching consumer is positioned on every partition of
    the violations topic before the first event is sent."""
    kafka = await fresh(base)
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    worker = start_worker(kafka, app_id, workdir)
    watcher = None
    try:
        # The clock starts once the worker processes events: one API call at the fleet's start.
        call = {"type": "api_call", "count": 1, "event_id": "warmup-1", "tenant_id": "warmup"}
        warmup = [(b"warmup", orjson.dumps({**call, "ts": FleetConfig().start_ms}))]
        await produce(kafka, warmup)
        await wait_caught_up(kafka, app_id, len(warmup), worker)
        watcher = ViolationWatcher(kafka)
        started_ms = time.time() * 1000
        await produce(kafka, pairs, rate=rate)
        await wait_caught_up(kafka, app_id, len(pairs) + len(warmup), worker)
        await asyncio.sleep(1)  # the last violations reach the watcher
    finally:
        if watcher is not None:
            watcher.stop()
        worker.kill()
        worker.wait()
    received = watcher.received
    event_time = {}
    for message in await read_all(kafka, "events"):
        try:
            obj = orjson.loads(message.value)
            event_time[(obj["tenant_id"], obj["ts"])] = message.timestamp
        except Exception:
            continue
    return [
        (at - event_time[key], (at - started_ms) / 1000)
        for key, at in received.items()
        if key in event_time
    ]


class ViolationWatcher:
    """Notes when each violation (by tenant and event time) is first seen ``read_committed``.

    It runs on its own thread and event loop, so the benchmark's producer (and its final wait
    for thousands of send futures) cannot delay a receipt, and it is positioned on every
    partition of the violations topic before the constructor returns. Its fetch wait is 10 ms:
    with aiokafka's default (500 ms) a violation on a partition left out of the fetch in flight
    (its earlier records still buffered) would wait for that fetch to return, time the watcher
    would add to the worker's latency.
    """

    FETCH_MAX_WAIT_MS = 10

    def __init__(self, kafka: KafkaSettings) -> None:
        self.received: dict[tuple[str, int], float] = {}
        self._kafka = kafka
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="violation-watcher", daemon=True)
        self._thread.start()
        if not self._ready.wait(60) or self._failure is not None:
            self.stop()  # raises the failure, if there was one
            raise RuntimeError("the violation watcher had no position after 60 s")

    def stop(self) -> None:
        """Stop watching (the receipts so far stay in :attr:`received`); raises if the watcher
        failed, since its receipts would then be incomplete."""
        self._stopping.set()
        self._thread.join(60)
        if self._failure is not None:
            raise RuntimeError(f"the violation watcher failed: {self._failure!r}")

    def _run(self) -> None:
        try:
            asyncio.run(self._watch())
        except BaseException as failure:  # raised by the constructor or by stop()
            self._failure = failure
            self._ready.set()

    async def _watch(self) -> None:
        consumer = AIOKafkaConsumer(
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            fetch_max_wait_ms=self.FETCH_MAX_WAIT_MS,
            **client_kwargs(self._kafka),
        )
        await consumer.start()
        try:
            consumer.subscribe([self._kafka.topic("violations")])  # no group: every partition
            while not consumer.assignment() and not self._stopping.is_set():
                await asyncio.sleep(0.01)
            for tp in consumer.assignment():  # the topic is new: its leaders take a moment
                await consumer.position(tp)
            self._ready.set()
            while not self._stopping.is_set():
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    now_ms = time.time() * 1000
                    for record in records:
                        v = orjson.loads(record.value)
                        self.received.setdefault((v["tenant_id"], v["ts"]), now_ms)
        finally:
            await consumer.stop()


async def read_all(kafka: KafkaSettings, name: str):
    topic = kafka.topic(name)
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs(kafka))
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(kafka.events_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found += records
        return found
    finally:
        await consumer.stop()


def tenant_pairs(tenants: int) -> list[tuple[bytes, bytes]]:
    """Four small events (a user, a session, a heartbeat, API calls) for each of ``tenants``."""
    start = 1_800_000_000_000
    pairs = []
    for n in range(tenants):
        tenant = f"mem-{n:06d}"
        for i, obj in enumerate(
            (
                {"type": "user_activated", "user_id": "u1"},
                {"type": "session_started", "session_id": "s1", "user_id": "u1", "media": "audio"},
                {"type": "session_heartbeat", "session_id": "s1"},
                {"type": "api_call", "count": 10},
            )
        ):
            payload = {
                **obj,
                "event_id": f"{tenant}-{i}",
                "tenant_id": tenant,
                "ts": start + i * 60_000,
            }
            pairs.append((tenant.encode(), orjson.dumps(payload)))
    return pairs


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument(
        "--history-days",
        type=int,
        default=8,
        help="days of history of the aged tenants (default 8: event ids expire after 7 days, "
        "so from then on a tenant's state keeps its size but for stored calls; 30 days of "
        "200 tenants are about 2.9 M events, 30 min on a quiet 2-core machine)",
    )
    parser.add_argument("--rate", type=float, help="steady rate (default: 40 %% of the ceiling)")
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--only-worker", action="store_true", help="only the worker throughput")
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated figures not to measure: aged, latency",
    )
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if skip - {"aged", "latency"}:
        parser.error(f"--skip takes aged and latency, not {', '.join(sorted(skip))}")
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retries while new topics elect
    base = load_settings().kafka
    workdir = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    _, pairs = fleet(args.events, args.tenants)
    print(
        f"broker {base.bootstrap}, {base.events_partitions} partitions, {len(pairs):,} events "
        f"of {args.tenants} tenants, logs in {workdir}, load average {load_average()}",
        flush=True,
    )

    worker = await worker_throughput(base, [], pairs, workdir)
    if args.only_worker:
        print(f"throughput  worker {worker.rate:,.0f} events/s")
        return
    ceiling_rate = await ceiling_throughput(base, [], pairs)
    print(
        f"fresh       worker {worker.rate:,.0f} events/s; plain aiokafka loop, same batch step "
        f"{ceiling_rate:,.0f} events/s; worker/ceiling {worker.rate / ceiling_rate:.0%}; "
        f"changelog {worker.changelog_per_event:,.0f} bytes/event "
        f"(load average {load_average()})",
        flush=True,
    )
    if args.history_days and "aged" not in skip:
        history, aged = fleet(args.events, args.tenants, history_days=args.history_days)
        aged_worker = await worker_throughput(base, history, aged, workdir)
        aged_ceiling = await ceiling_throughput(base, history, aged)
        print(
            f"aged        after {len(history):,} events ({args.history_days} days) of history "
            f"(worker {aged_worker.history_rate:,.0f} events/s on it; its restart, recovery "
            f"from the changelog included, to the first commit {aged_worker.restart_s:.1f} s): "
            f"worker {aged_worker.rate:,.0f} events/s; ceiling {aged_ceiling:,.0f} events/s; "
            f"worker/ceiling {aged_worker.rate / aged_ceiling:.0%}; changelog "
            f"{aged_worker.changelog_per_event:,.0f} bytes/event (load average {load_average()})",
            flush=True,
        )

    if "latency" not in skip:
        rate = args.rate or 0.4 * ceiling_rate
        # Few tenants, each breaking a rule, so that event time moves fast enough for
        # violations within the run (a simulated month in about 40 s: event time runs some
        # 60,000 times faster than the clock). The fleet's first day is left out: on it the
        # storage breakers import a backlog of calls (tens of thousands of events in 8 hours),
        # whose ids the worker forgets 7 days later, an hour's worth at a time; at this speed
        # those 8 hours of tombstones fall within half a second of the run, a burst that real
        # time spreads over 8 hours (docs/benchmarks.md, "Latency: the expiry burst and the
        # watcher").
        _, steady = fleet(int(rate * args.latency_seconds), 6, seed=5, breakers=1.0, history_days=1)
        samples = sorted(await violation_latency(base, steady, rate, workdir))
        latencies = [ms for ms, _ in samples]
        if latencies:
            p50 = statistics.median(latencies)
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            slowest = ", ".join(f"{ms:.0f} ms at {at:.1f} s" for ms, at in samples[-3:][::-1])
            print(
                f"latency     event -> violation (committed) at {rate:,.0f} events/s: p50 "
                f"{p50:.0f} ms, p99 {p99:.0f} ms, max {latencies[-1]:.0f} ms "
                f"({len(latencies)} violations; slowest: {slowest} into the run; "
                f"load average {load_average()})",
                flush=True,
            )
        else:
            print("latency     no violations in the steady run (raise --latency-seconds)")


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages."""
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    asyncio.run(main())
