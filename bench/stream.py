"""Benchmark of the streaming worker against the real broker; prints figures.

1. Sustained throughput: events already on the topic -> all outputs published and offsets
   committed, for ``fairuse worker`` (a subprocess) and, in the same run, for a plain aiokafka
   consumer loop driving the same core and publishing the same records (the no-framework
   ceiling, without state changelog).
2. Event -> violation latency p50/p99 at a steady produce rate (default 5,000 events/s):
   broker append time of the violation minus that of the event that triggered it.
3. Worker memory (RSS growth) per 10,000 active tenants.

    FAIRUSE_KAFKA_BOOTSTRAP=127.0.0.1:19092 .venv/bin/python bench/stream.py [--events 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from fairuse.kafka import client_kwargs
from fairuse.policy import DEFAULT_POLICY
from fairuse.recorder.simulator import FleetConfig, simulate
from fairuse.settings import KafkaSettings, load_settings
from fairuse.stream.core import Inbound, StreamCore, apply_writes
from fairuse.topics import create_topics_async

DAY_MS = 86_400_000
REPO = Path(__file__).resolve().parent.parent


def fleet(events: int, tenants: int, seed: int = 11) -> list[tuple[bytes, bytes]]:
    """``events`` simulated (key, payload) pairs of ``tenants`` tenants."""
    config = FleetConfig(
        seed=seed, tenants=tenants, duration_ms=None, heartbeat_s=300, breaker_share=0.3
    )
    found = []
    for emission in simulate(config):
        found.append((emission.tenant_id.encode(), emission.payload))
        if len(found) == events:
            break
    return found


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


def start_worker(kafka: KafkaSettings, app_id: str, workdir: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        FAIRUSE_KAFKA_BOOTSTRAP=kafka.bootstrap,
        FAIRUSE_KAFKA_TOPIC_PREFIX=kafka.topic_prefix,
        FAIRUSE_KAFKA_EVENTS_PARTITIONS=str(kafka.events_partitions),
        FAIRUSE_DATA_DIR=str(workdir),
        FAIRUSE_WORKER_APP_ID=app_id,
        FAIRUSE_WORKER_WEB_PORT=str(20000 + uuid.uuid4().int % 20000),
    )
    log = (workdir / f"{app_id}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "fairuse", "worker"], env=env, stdout=log, stderr=log, cwd=REPO
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def wait_caught_up(kafka: KafkaSettings, group: str, total: int) -> tuple[float, float]:
    """Poll until the group committed everything; (seconds from first progress, events then)."""
    first: tuple[float, int] | None = None
    while True:
        remaining = await lag(kafka, group)
        now = time.monotonic()
        if first is None and remaining < total:
            first = (now, total - remaining)
        if remaining == 0:
            assert first is not None
            return now - first[0], total - first[1]
        await asyncio.sleep(0.2)


async def worker_throughput(base: KafkaSettings, pairs, workdir: Path) -> float:
    kafka = await fresh(base)
    await produce(kafka, pairs)
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    worker = start_worker(kafka, app_id, workdir)
    try:
        seconds, events = await wait_caught_up(kafka, app_id, len(pairs))
    finally:
        worker.kill()
        worker.wait()
    return events / seconds


async def ceiling_throughput(base: KafkaSettings, pairs) -> float:
    """Plain aiokafka loop: fetch, run the same core, publish outputs, await them per batch."""
    kafka = await fresh(base)
    await produce(kafka, pairs)
    topic = kafka.topic("events")
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False, max_poll_records=2000, **client_kwargs(kafka)
    )
    producer = AIOKafkaProducer(
        acks="all", linger_ms=5, compression_type="lz4", **client_kwargs(kafka)
    )
    await consumer.start()
    await producer.start()
    store: dict[str, bytes] = {}
    core = StreamCore(DEFAULT_POLICY, kafka, store)
    tps = [TopicPartition(topic, p) for p in range(kafka.events_partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    done = 0
    start = time.monotonic()
    try:
        while done < len(pairs):
            batches = await consumer.getmany(timeout_ms=200, max_records=1000)
            messages = [
                Inbound(m.value, tp.topic, tp.partition, m.offset)
                for tp, records in batches.items()
                for m in records
            ]
            if not messages:
                continue
            batch = core.process(messages)
            pending = [await producer.send(o.topic, o.value, key=o.key) for o in batch.outputs]
            await asyncio.gather(*pending)
            apply_writes(store, core.commit())
            done += len(messages)
    finally:
        await consumer.stop()
        await producer.stop()
    return len(pairs) / (time.monotonic() - start)


async def violation_latency(base: KafkaSettings, pairs, rate: float, workdir: Path):
    kafka = await fresh(base)
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    worker = start_worker(kafka, app_id, workdir)
    try:
        await asyncio.sleep(8)  # let the worker join its group before the clock starts
        await produce(kafka, pairs, rate=rate)
        await wait_caught_up(kafka, app_id, len(pairs))
    finally:
        worker.kill()
        worker.wait()
    appended = await read_all(kafka, "events")
    event_time = {}
    for message in appended:
        try:
            obj = orjson.loads(message.value)
            event_time[(obj["tenant_id"], obj["ts"])] = message.timestamp
        except Exception:
            continue
    latencies = [
        m.timestamp - event_time[(v["tenant_id"], v["ts"])]
        for m in await read_all(kafka, "violations")
        if (v := orjson.loads(m.value)) and (v["tenant_id"], v["ts"]) in event_time
    ]
    return latencies


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


async def memory_per_10k_tenants(base: KafkaSettings, tenants: int, workdir: Path):
    kafka = await fresh(base)
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
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    worker = start_worker(kafka, app_id, workdir)
    try:
        await asyncio.sleep(10)
        baseline = rss_mb(worker.pid)
        await produce(kafka, pairs)
        await wait_caught_up(kafka, app_id, len(pairs))
        loaded = rss_mb(worker.pid)
    finally:
        worker.kill()
        worker.wait()
    return baseline, loaded


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--memory-tenants", type=int, default=10_000)
    parser.add_argument("--only-worker", action="store_true", help="only the worker throughput")
    args = parser.parse_args()
    base = load_settings().kafka
    workdir = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    pairs = fleet(args.events, args.tenants)
    print(
        f"broker {base.bootstrap}, {base.events_partitions} partitions, {len(pairs):,} events "
        f"of {args.tenants} tenants, logs in {workdir}"
    )

    worker_rate = await worker_throughput(base, pairs, workdir)
    if args.only_worker:
        print(f"throughput  worker {worker_rate:,.0f} events/s")
        return
    ceiling_rate = await ceiling_throughput(base, pairs)
    print(
        f"throughput  worker {worker_rate:,.0f} events/s; plain aiokafka loop, same core "
        f"{ceiling_rate:,.0f} events/s; worker/ceiling {worker_rate / ceiling_rate:.0%}"
    )

    # Few tenants, so event time moves fast enough for violations within the run.
    steady = fleet(int(args.rate * args.latency_seconds), 12, seed=5)
    latencies = sorted(await violation_latency(base, steady, args.rate, workdir))
    if latencies:
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(
            f"latency     event -> violation at {args.rate:,.0f} events/s: p50 {p50:.0f} ms, "
            f"p99 {p99:.0f} ms, max {latencies[-1]:.0f} ms ({len(latencies)} violations)"
        )
    else:
        print("latency     no violations in the steady run (raise --latency-seconds)")

    baseline, loaded = await memory_per_10k_tenants(base, args.memory_tenants, workdir)
    per_10k = (loaded - baseline) * 10_000 / args.memory_tenants
    print(
        f"memory      worker RSS {baseline:.0f} MB idle, {loaded:.0f} MB with "
        f"{args.memory_tenants:,} active tenants: {per_10k:.0f} MB per 10,000 tenants"
    )


if __name__ == "__main__":
    asyncio.run(main())
