"""Ingest figures against a real broker: HTTP ingest, the spool, and draining a spool.

    make broker-start                      # or any broker: FAIRUSE_KAFKA_BOOTSTRAP=host:port
    .venv/bin/python bench/ingest.py [--events 200000] [--drain 1000000]

Prints, on the same simulated events (a fresh ``bench-...`` topic prefix per run):

- ``http batch=N``: events/s through ``fairuse ingest`` (a subprocess) with N events per request
  and 4 requests in flight, and events/s per core of the service (its own CPU seconds, from
  /proc); every request is answered 202, i.e. acknowledged by the broker;
- ``http latency``: p50/p99 request latency of batches of 100 at a steady rate (half the request
  rate the batch=100 stage sustained, so requests do not queue);
- ``kafka direct`` vs ``kafka via spool``: the recorder client's ``send_many_raw`` + ``flush``
  without and with a spool (``spooled`` = until every ``send`` returned, ``delivered`` = until the
  spool is empty), in the same run;
- ``drain``: a spool of ``--drain`` events written first, then the time a fresh client takes to
  deliver it all (``--drain 0`` skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp

from fairuse.errors import BrokerError
from fairuse.kafka import check_broker
from fairuse.recorder.client import RecorderClient
from fairuse.recorder.simulator import FleetConfig, simulate
from fairuse.recorder.spool import Spool, SpoolOptions
from fairuse.settings import KafkaSettings, load_settings
from fairuse.topics import create_topics

TOKEN = "bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def start_ingest(settings: KafkaSettings, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FAIRUSE_KAFKA_BOOTSTRAP": settings.bootstrap,
        "FAIRUSE_KAFKA_TOPIC_PREFIX": settings.topic_prefix,
        "FAIRUSE_INGEST_TOKENS": f"{TOKEN}=*",
        "FAIRUSE_INGEST_RATE_EVENTS_PER_S": str(10**9),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "fairuse", "ingest", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


async def until_ready(session: aiohttp.ClientSession, base: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{base}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("fairuse ingest did not become ready")


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> float:
    started = time.perf_counter()
    async with session.post(url, data=body) as response:
        await response.read()
        assert response.status == 202, response.status
    return time.perf_counter() - started


async def send_all(session: aiohttp.ClientSession, url: str, bodies: Iterator[bytes]) -> None:
    """POST bodies until the shared iterator is exhausted (several of these run at once)."""
    for body in bodies:
        await post(session, url, body)


async def http_stages(payloads: list[bytes], base: str, pid: int) -> None:
    url = f"{base}/v1/events"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"}
    async with aiohttp.ClientSession(headers=headers) as session:
        await until_ready(session, base)
        capacity_rps = 1.0
        for batch in (1, 100, 1000):
            count = min(len(payloads), 5_000 if batch == 1 else len(payloads))
            bodies = [
                b"\n".join(payloads[i : i + batch]) for i in range(0, count, batch)
            ]  # fmt: skip
            queue = iter(bodies)

            cpu, wall = cpu_seconds(pid), time.perf_counter()
            await asyncio.gather(*(send_all(session, url, queue) for _ in range(4)))
            wall_s, cpu_s = time.perf_counter() - wall, cpu_seconds(pid) - cpu
            if batch == 100:
                capacity_rps = count / wall_s / 100
            print(
                f"http batch={batch:<5} {count / wall_s:>10,.0f} events/s  "
                f"{count / max(cpu_s, 1e-9):>10,.0f} events/s per core of the service  "
                f"({count:,} events, {wall_s:.1f} s)",
                flush=True,
            )
        # Steady: half the batch=100 request rate this machine just sustained (never below 1/s).
        rate_rps, seconds = max(1, round(capacity_rps / 2)), 15
        bodies = itertools.cycle(
            b"\n".join(payloads[i : i + 100]) for i in range(0, min(len(payloads), 10_000), 100)
        )
        latencies: list[float] = []
        start = time.perf_counter()
        tasks = []
        for n in range(rate_rps * seconds):
            await asyncio.sleep(max(0.0, start + n / rate_rps - time.perf_counter()))
            tasks.append(asyncio.create_task(post(session, url, next(bodies))))
        latencies = sorted(await asyncio.gather(*tasks))
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1000
        print(
            f"http latency  batches of 100 at {rate_rps} requests/s ({rate_rps * 100:,} events/s)"
            f" for {seconds} s: p50 {p50:.1f} ms, p99 {p99:.1f} ms",
            flush=True,
        )


async def spool_stages(
    settings: KafkaSettings, records: list[tuple[bytes, bytes]], tmp: Path
) -> None:
    count = len(records)
    async with RecorderClient(settings) as client:
        wall = time.perf_counter()
        await client.send_many_raw(records)
        await client.flush()
        direct = time.perf_counter() - wall
    print(f"kafka direct          {count / direct:>10,.0f} events/s  ({direct:.1f} s)", flush=True)
    async with RecorderClient(settings, spool_dir=tmp / "spool") as client:
        wall = time.perf_counter()
        await client.send_many_raw(records)
        spooled = time.perf_counter() - wall
        await client.flush()
        delivered = time.perf_counter() - wall
    print(
        f"kafka via spool       {count / delivered:>10,.0f} events/s delivered ({delivered:.1f} s)"
        f", {count / spooled:,.0f} events/s spooled ({spooled:.1f} s)",
        flush=True,
    )


def fill_spool(directory: Path, records: list[tuple[bytes, bytes]], total: int) -> None:
    spool = Spool.open(directory, SpoolOptions(max_bytes=8 * 1024**3))
    written = 0
    for start in range(0, total, 1000):
        chunk = [records[i % len(records)] for i in range(start, min(start + 1000, total))]
        written += spool.append(chunk)
    spool.close()
    print(f"drain: spool of {total:,} events, {written / 1024**2:,.0f} MiB written", flush=True)


async def drain(settings: KafkaSettings, directory: Path, total: int) -> None:
    wall = time.perf_counter()
    async with RecorderClient(settings, spool_dir=directory) as client:
        await client.flush()
    took = time.perf_counter() - wall
    assert client.delivered == total, (client.delivered, total)
    print(f"drain {total:,} events   {took:.1f} s ({total / took:,.0f} events/s)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--drain", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=28_188)
    args = parser.parse_args()
    settings = load_settings().kafka
    try:
        asyncio.run(check_broker(settings))
    except BrokerError as exc:
        print(f"bench/ingest.py: {exc}\nstart one first: make broker-start", file=sys.stderr)
        return 2
    settings = replace(settings, topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.")
    create_topics(settings)
    config = FleetConfig(tenants=12, duration_ms=None)
    emissions = list(itertools.islice(simulate(config), args.events))
    payloads = [e.payload for e in emissions]
    records = [(e.tenant_id.encode(), e.payload) for e in emissions]
    print(f"broker {settings.bootstrap}, {len(payloads):,} events, topic prefix "
          f"{settings.topic_prefix}, cpus {os.cpu_count()}", flush=True)  # fmt: skip
    service = start_ingest(settings, args.port)
    try:
        asyncio.run(http_stages(payloads, f"http://127.0.0.1:{args.port}", service.pid))
    finally:
        service.terminate()
        service.wait()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(spool_stages(settings, records, Path(tmp)))
        if args.drain:
            fill_spool(Path(tmp) / "drain", records, args.drain)
            asyncio.run(drain(settings, Path(tmp) / "drain", args.drain))
    return 0


if __name__ == "__main__":
    sys.exit(main())
