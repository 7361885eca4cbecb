"""Warehouse benchmark: sink insert throughput into chDB and report latency over 10M events.

    .venv/bin/python bench/warehouse.py [--rows 500000] [--raw-events 10000000]
                                        [--kafka 127.0.0.1:19092 --kafka-rows 200000]

Prints figures, asserts nothing. Parts:
1. insert path: payloads -> Batcher (decode, type mapping) -> column-oriented insert with a dedup
   token, as the sink does it, and the insert call alone on prepared columns;
2. consume -> insert (only with --kafka): records produced to fresh topics, then the real Sink
   until every offset is committed;
3. reports over --raw-events raw events (+ accruals, violations) generated inside chDB with
   INSERT ... SELECT FROM numbers(): offenders of a month and one tenant's monthly usage.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from fairuse.records import UsageAccrual
from fairuse.warehouse import reports
from fairuse.warehouse.batching import Batcher
from fairuse.warehouse.client import connect
from fairuse.warehouse.migrate import migrate
from fairuse.warehouse.result import run_query
from fairuse.warehouse.rows import TABLE_COLUMNS, columns_of
from fairuse.warehouse.sink import BatchWriter

BASE_MS = 1_793_577_600_000  # 2026-11-02T00:00:00Z
MONTH = "2026-11"


def _event_payloads(n: int, tenants: int = 1000) -> list[bytes]:
    return [
        b'{"type":"api_call","event_id":"b%d","tenant_id":"tenant-%04d","ts":%d,"count":%d}'
        % (i, i % tenants, BASE_MS + i * 7, 1 + i % 5)
        for i in range(n)
    ]


def _accrual_payloads(n: int, tenants: int = 1000) -> list[bytes]:
    return [
        UsageAccrual(
            tenant_id=f"tenant-{i % tenants:04d}", metric="audio_hours",
            day=f"2026-11-{1 + i % 28:02d}", weighted_ms=60_000.0, raw_ms=60_000,
            session_id=f"s{i // 10}", user_id=f"u{i % 50}", event_id=f"h{i}",
        ).to_json()
        for i in range(n)
    ]  # fmt: skip


def bench_insert_path(client, rows: int, batch_rows: int) -> None:
    """Part 1: the sink's decode + insert path, and the bare insert."""
    writer = BatchWriter(client)
    for topic, table, payloads in (
        ("bench.events", "events", _event_payloads(rows)),
        ("bench.usage", "usage", _accrual_payloads(rows)),
    ):
        batcher = Batcher({topic: table}, max_rows=batch_rows, max_ms=10**9)
        started = time.perf_counter()
        for offset, payload in enumerate(payloads):
            batcher.add(topic, 0, offset, payload, 0.0)
        batches = batcher.due(0.0, drain=True)
        decoded = time.perf_counter()

        async def write_all(batches=batches) -> None:
            for batch in batches:
                await writer.write(batch)

        asyncio.run(write_all())
        done = time.perf_counter()
        print(
            f"insert path {table:7s}: {rows:,} rows in {done - started:.2f} s = "
            f"{rows / (done - started):,.0f} rows/s (decode+map {rows / (decoded - started):,.0f}"
            f" rows/s, insert {rows / (done - decoded):,.0f} rows/s, {batch_rows:,}-row batches)"
        )
    columns = columns_of(batches[0].rows["usage"]) if batches else []
    n = len(columns[0]) if columns else 0
    started = time.perf_counter()
    for i in range(5):
        client.insert(
            "usage", columns, column_names=list(TABLE_COLUMNS["usage"]), column_oriented=True,
            settings={"async_insert": 0, "insert_deduplication_token": f"bare-{i}"},
        )  # fmt: skip
    elapsed = time.perf_counter() - started
    print(f"bare insert usage  : {5 * n:,} rows in {elapsed:.2f} s = {5 * n / elapsed:,.0f} rows/s")


def bench_consume_insert(client, bootstrap: str, rows: int) -> None:
    """Part 2: produce to fresh topics, run the real Sink until all offsets are committed."""
    from aiokafka import AIOKafkaProducer

    from fairuse.kafka import client_kwargs
    from fairuse.settings import KafkaSettings, Settings, WarehouseSettings
    from fairuse.topics import create_topics
    from fairuse.warehouse.sink import Sink

    kafka = KafkaSettings(bootstrap=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:8]}.")
    create_topics(kafka)
    payloads = _event_payloads(rows)

    async def produce() -> None:
        producer = AIOKafkaProducer(linger_ms=20, max_batch_size=1 << 20, **client_kwargs(kafka))
        await producer.start()
        try:
            for payload in payloads:
                await producer.send(kafka.topic("events"), payload, key=payload[40:51])
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(produce())
    settings = Settings(kafka=kafka, warehouse=WarehouseSettings(sink_batch_rows=50_000))
    sink = Sink(settings, client, group_id=f"bench-{uuid.uuid4().hex[:8]}")

    async def consume() -> float:
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(stop))
        started = None
        while sink.committed_messages < rows:
            if started is None and sink.batcher.pending:
                started = time.perf_counter()
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - (started or time.perf_counter())
        stop.set()
        await task
        return elapsed

    elapsed = asyncio.run(consume())
    print(
        f"consume->insert    : {rows:,} events in {elapsed:.2f} s = {rows / elapsed:,.0f} rows/s "
        "(first message held -> last offset committed)"
    )


def generate_raw(client, raw_events: int, tenants: int = 1000) -> None:
    """Part 3 data: ``raw_events`` events, a fifth as many accruals, some violations."""
    started = time.perf_counter()
    start_ms, month_ms = BASE_MS - 86_400_000, 28 * 86_400_000
    tenant = f"concat('tenant-', leftPad(toString(number % {tenants}), 4, '0'))"
    day = "concat('2026-11-', leftPad(toString(1 + number % 28), 2, '0'))"
    k = f"intDiv(number, {tenants})"  # varies within a tenant (number % tenants does not)
    client.command(
        f"""INSERT INTO events (event_id, tenant_id, type, ts, session_id, user_id, media,
                                api_count, raw, source)
        SELECT concat('g', toString(number)), {tenant},
               ['session_heartbeat', 'api_call', 'session_started', 'call_stored'][1 + {k} % 4],
               fromUnixTimestamp64Milli(toInt64({start_ms} + (number * 7919) % {month_ms})),
               concat('s', toString(intDiv(number, 40))), concat('u', toString(number % 37)),
               if({k} % 4 = 2, 'audio', ''), if({k} % 4 = 1, 1 + number % 5, 0),
               concat('{{"event_id":"g', toString(number), '"}}'), 'bench'
        FROM numbers({raw_events})""",
        settings={"async_insert": 0, "max_insert_threads": 2},
    )
    accruals = raw_events // 5
    client.command(
        f"""INSERT INTO usage (tenant_id, metric, day, weighted_ms, raw_ms, session_id, user_id,
                               event_id, source)
        SELECT {tenant}, ['audio_hours', 'video_hours'][1 + {k} % 2],
               toDate('2026-11-01') + ({k} * 13) % 30, 60000 * (1 + number % 3), 60000,
               concat('s', toString(intDiv(number, 40))), concat('u', toString(number % 37)),
               concat('h', toString(number)), 'bench'
        FROM numbers({accruals})""",
        settings={"async_insert": 0},
    )
    client.command(
        f"""INSERT INTO violations (violation_id, tenant_id, metric, period, status, observed,
                                    `limit`, unit, seats, policy_revision, ts, source)
        SELECT concat('v', toString(number)), {tenant},
               ['audio_hours', 'video_hours', 'api_calls'][1 + number % 3],
               if(number % 3 = 2, {day}, '2026-11'),
               ['warning', 'exceeded'][1 + number % 2], 100 + number % 97, 100, 'hours', 10, 'r1',
               fromUnixTimestamp64Milli(toInt64({BASE_MS} + number * 1000)), 'bench'
        FROM numbers(5000)""",
        settings={"async_insert": 0},
    )
    elapsed = time.perf_counter() - started
    print(f"generated          : {raw_events:,} raw events + {accruals:,} accruals + 5,000 "
          f"violations in {elapsed:.1f} s")  # fmt: skip


def time_query(client, name: str, query: tuple[str, dict], runs: int = 5) -> None:
    """Print the median and best of ``runs`` executions (after one warm-up)."""
    sql, params = query
    result = run_query(client, sql, params, settings={"readonly": 1})
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        run_query(client, sql, params, settings={"readonly": 1})
        timings.append(time.perf_counter() - started)
    print(
        f"query {name:22s}: median {statistics.median(timings) * 1000:7.1f} ms, best "
        f"{min(timings) * 1000:7.1f} ms ({len(result.rows)} rows)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=500_000, help="rows for the insert path")
    parser.add_argument("--batch-rows", type=int, default=50_000)
    parser.add_argument("--raw-events", type=int, default=10_000_000)
    parser.add_argument("--kafka", help="bootstrap of a running broker for consume->insert")
    parser.add_argument("--kafka-rows", type=int, default=200_000)
    parser.add_argument("--dir", type=Path, help="chDB directory (default: a temporary one)")
    args = parser.parse_args(argv)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="fairuse-bench-"))
    client = connect(f"chdb://{workdir / 'warehouse'}")
    try:
        migrate(client, events_ttl_days=0)
        bench_insert_path(client, args.rows, args.batch_rows)
        if args.kafka:
            bench_consume_insert(client, args.kafka, args.kafka_rows)
        for table in ("events", "usage", "violations", "usage_daily", "usage_daily_by_user"):
            client.command(f"TRUNCATE TABLE {table}")
        generate_raw(client, args.raw_events)
        client.command("OPTIMIZE TABLE violations FINAL")
        tenant = "tenant-0042"
        time_query(client, "offenders (month)", reports.offenders(MONTH, top=10))
        time_query(client, "offenders video_hours", reports.offenders(MONTH, "video_hours", 10))
        time_query(client, "tenant usage per day", reports.usage_daily(tenant, MONTH))
        time_query(client, "tenant usage totals", reports.usage_totals(tenant, MONTH))
        time_query(client, "tenant violations", reports.violations(tenant, MONTH))
        time_query(client, "consistency check", reports.consistency(MONTH))
    finally:
        client.close()
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
