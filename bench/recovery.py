"""RocksDB worker figures against a real broker; prints them.

    FAIRUSE_KAFKA_BOOTSTRAP=127.0.0.1:19092 .venv/bin/python bench/recovery.py \
        [--tenants 10000] [--calls 1000000,5000000] [--days 30]

1. ``tenants``: a RocksDB worker and a memory-store worker (in separate consumer groups) take
   ``--tenants`` tenants of four events each: RSS growth of each per 10,000 tenants; then the
   RocksDB worker is restarted (SIGKILL first) and timed from its start to its first processed
   event: with no state at all (its first start), from its local store plus the changelog's
   tail, and with the local store deleted (from the changelog); then the memory-store worker,
   which always recovers from the changelog.
2. ``heavy``: worker throughput (events/s, from the group's committed offsets) on one
   simulated tenant's ``--days`` of events when the tenant already holds N stored calls,
   against the same events of two new tenants on the same partition, before and after it,
   in the same run, with batches of at most 500 events. The N calls are written straight
   into the worker's RocksDB store while it is stopped (the keys the core writes for them,
   and the tenant's entry counting them):
   producing and processing millions of events first would take hours on a shared 2-core
   machine. The changelog does not hold them, which the measured processing never reads.

Each part uses fresh topics (``bench<hex>.`` prefix, left behind); logs in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner
from replay import simulated_month
from rocksdict import Options, Rdict, WriteBatch
from state import field_of
from stream import fresh, lag, load_average, produce, rss_mb, start_worker, tenant_pairs

from fairuse.kafka import client_kwargs
from fairuse.ledger.keyed import PRESENT, tenant_key
from fairuse.ledger.state import TenantState
from fairuse.settings import KafkaSettings, load_settings
from fairuse.stream.core import TenantEntry, entry_key
from fairuse.stream.delivery import changelog_key

ROCKSDB = {"FAIRUSE_WORKER_STORE": "rocksdb://"}
SMALL_BATCHES = {"FAIRUSE_WORKER_BATCH_MAX": "500"}
"""For ``heavy``: commits every 500 events at most, so that the committed offset, sampled every
0.25 s, tells when each segment starts and ends (batches of the default 4,000 events span
most of a 10-day segment)."""
PROBE_TS = 1_800_000_900_000  # after every event of tenant_pairs


def partition_of(tenant: str, partitions: int) -> int:
    """The events partition of ``tenant`` (the producer's default partitioner)."""
    every = list(range(partitions))
    return DefaultPartitioner()(tenant.encode(), every, every)


async def probe_processed(kafka: KafkaSettings, group: str, name: str) -> None:
    """Produce one event and wait until ``group`` has committed everything."""
    event = {"type": "api_call", "count": 1, "event_id": f"probe-{name}"}
    payload = {**event, "tenant_id": "probe", "ts": PROBE_TS}
    await produce(kafka, [(b"probe", orjson.dumps(payload))])
    while await lag(kafka, group):
        await asyncio.sleep(0.2)


async def caught_up(kafka: KafkaSettings, group: str) -> None:
    while await lag(kafka, group):
        await asyncio.sleep(0.5)


async def tenants_figures(base: KafkaSettings, tenants: int, workdir: Path) -> None:
    kafka = await fresh(base)
    rocks, memory = f"bench-r{uuid.uuid4().hex[:8]}", f"bench-m{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    workers = {rocks: start_worker(kafka, rocks, workdir, **ROCKSDB)}
    workers[memory] = start_worker(kafka, memory, workdir)
    try:
        await probe_processed(kafka, rocks, "first")
        empty_s = time.monotonic() - started
        await caught_up(kafka, memory)
        idle = {group: rss_mb(worker.pid) for group, worker in workers.items()}
        await produce(kafka, tenant_pairs(tenants))
        for group in workers:
            await caught_up(kafka, group)
        loaded = {group: rss_mb(worker.pid) for group, worker in workers.items()}
    finally:
        for worker in workers.values():
            worker.kill()
            worker.wait()
    for label, group in (("RocksDB", rocks), ("memory", memory)):
        per_10k = (loaded[group] - idle[group]) * 10_000 / tenants
        print(
            f"rss         {label:7} store: {idle[group]:.0f} MB idle, {loaded[group]:.0f} MB "
            f"with {tenants:,} tenants: {per_10k:.0f} MB per 10,000 tenants",
            flush=True,
        )
    found = []
    restarts = (("local", rocks, ROCKSDB), ("changelog", rocks, ROCKSDB), ("memory", memory, {}))
    for name, group, store in restarts:
        if name == "changelog":
            shutil.rmtree(workdir / "worker" / rocks)
        started = time.monotonic()
        worker = start_worker(kafka, group, workdir, **store)
        try:
            await probe_processed(kafka, group, name)
            found.append(time.monotonic() - started)
        finally:
            worker.kill()
            worker.wait()
    print(
        f"recovery    {tenants:,} tenants, start to first event processed: RocksDB store "
        f"{empty_s:.1f} s with no state (first start), {found[0]:.1f} s from the local store, "
        f"{found[1]:.1f} s from the changelog; memory store (always from the changelog) "
        f"{found[2]:.1f} s (load average {load_average()})",
        flush=True,
    )


def store_calls(tables: Path, tenant: str, partition: int, calls: int) -> None:
    """Write ``calls`` stored calls of ``tenant`` into the stopped worker's RocksDB store of its
    partition, as the core's keys, and the tenant's entry counting them."""
    (path,) = tables.rglob(f"tenants-{partition}.db")
    db = Rdict(str(path), Options(raw_mode=True))
    try:
        prefix = tenant_key(tenant, "c")
        for start in range(0, calls, 100_000):
            batch = WriteBatch(raw_mode=True)
            for i in range(start, min(calls, start + 100_000)):
                batch.put(changelog_key(f"{prefix}history-call-{i:09d}"), PRESENT)
            db.write(batch)
        state = TenantState.new(tenant)
        state.calls.count = calls
        db[changelog_key(entry_key(tenant))] = TenantEntry(state, partition, -1).to_bytes()
    finally:
        db.close()


async def committed_offset(admin: AIOKafkaAdminClient, group: str, topic: str, partition: int):
    found = await admin.list_consumer_group_offsets(group)
    return next(
        (m.offset for tp, m in found.items() if (tp.topic, tp.partition) == (topic, partition)),
        -1,
    )


def renamed(payloads: list[bytes], tenant: str) -> list[tuple[bytes, bytes]]:
    return [
        (tenant.encode(), orjson.dumps({**orjson.loads(p), "tenant_id": tenant})) for p in payloads
    ]


async def heavy_figures(base: KafkaSettings, calls: int, days: int, workdir: Path) -> None:
    kafka = await fresh(base)
    group = f"bench-h{uuid.uuid4().hex[:8]}"
    partitions = kafka.events_partitions
    names = (f"heavy-{n}" for n in range(10_000))
    heavy = next(names)
    partition = partition_of(heavy, partitions)
    neighbours = (n for n in names if partition_of(n, partitions) == partition)
    before, after = next(neighbours), next(neighbours)
    payloads = simulated_month(12, days, 1, 0.0)
    own = [p for p in payloads if field_of(p, "tenant_id") == field_of(payloads[0], "tenant_id")]

    worker = start_worker(kafka, group, workdir, **ROCKSDB)  # creates the stores
    try:
        await probe_processed(kafka, group, "setup")
    finally:
        worker.kill()
        worker.wait()
    started = time.monotonic()
    store_calls(workdir / "worker" / group, heavy, partition, calls)
    print(f"heavy       {calls:,} stored calls written in {time.monotonic() - started:.0f} s")

    segments = [renamed(own, tenant) for tenant in (before, heavy, after)]
    topic = kafka.topic("events")
    admin = AIOKafkaAdminClient(**client_kwargs(kafka))
    await admin.start()
    try:
        start = max(await committed_offset(admin, group, topic, partition), 0)
        bounds = [start]
        for segment in segments:
            await produce(kafka, segment)
            bounds.append(bounds[-1] + len(segment))
        worker = start_worker(kafka, group, workdir, **ROCKSDB, **SMALL_BATCHES)
        samples: list[tuple[float, int]] = []
        try:
            while not samples or samples[-1][1] < bounds[-1]:
                offset = await committed_offset(admin, group, topic, partition)
                samples.append((time.monotonic(), offset))
                await asyncio.sleep(0.25)
        finally:
            worker.kill()
            worker.wait()
    finally:
        await admin.close()
    # Each segment from the first commit at or past its start (the first one: past it, as the
    # worker starts first) to the first commit at or past its end.
    first = next((t, o) for t, o in samples if o > bounds[0])
    reached = [first] + [next((t, o) for t, o in samples if o >= b) for b in bounds[1:]]
    rates = []
    for (t0, o0), (t1, o1) in itertools.pairwise(reached):
        if o1 <= o0 or t1 <= t0:
            raise SystemExit(f"too few commits in a segment: raise --days ({samples})")
        rates.append((o1 - o0) / (t1 - t0))
    new_rate = (rates[0] + rates[2]) / 2
    print(
        f"heavy       {len(own):,} events ({days} days of one tenant) per segment on one "
        f"partition: new tenant {rates[0]:,.0f} events/s, tenant holding {calls:,} stored calls "
        f"{rates[1]:,.0f} events/s, new tenant {rates[2]:,.0f} events/s: "
        f"{rates[1] / new_rate:.0%} of a new tenant's rate (load average {load_average()})",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--calls", default="1000000,5000000")
    parser.add_argument("--days", type=int, default=30, help="days of the measured tenant")
    parser.add_argument("--only", choices=("tenants", "heavy"))
    args = parser.parse_args()
    base = load_settings().kafka
    workdir = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    print(f"broker {base.bootstrap}, {base.events_partitions} partitions, logs in {workdir}")
    if args.only != "heavy":
        await tenants_figures(base, args.tenants, workdir)
    if args.only != "tenants":
        for calls in (int(c) for c in args.calls.split(",") if c):
            await heavy_figures(base, calls, args.days, workdir)


if __name__ == "__main__":
    asyncio.run(main())
