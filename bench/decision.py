"""Benchmark of the decision API (``GET /v1/tenants/{id}/decision``) against two real workers.

Starts two ``fairuse worker`` processes in one group on the broker of
``FAIRUSE_KAFKA_BOOTSTRAP`` (topics under a fresh prefix), gives ``--tenants`` tenants one event
each, then asks each worker about each tenant: answered locally by the partition owner, or
forwarded to it (routed: the response carries ``Via``). Prints, for local and routed requests,
p50/p99 latency one request at a time and requests/s with ``--concurrency`` requests in flight
(``--rounds`` rounds, local and routed alternated), and the load average.

    FAIRUSE_KAFKA_BOOTSTRAP=127.0.0.1:19092 .venv/bin/python bench/decision.py [--requests 2000]
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
from pathlib import Path

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

from fairuse.kafka import client_kwargs
from fairuse.settings import KafkaSettings, load_settings
from fairuse.topics import create_topics

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-admin"


def start_worker(kafka: KafkaSettings, app_id: str, port: int, workdir: Path) -> subprocess.Popen:
    """A ``fairuse worker`` subprocess answering on ``port``."""
    env = {
        **os.environ,
        "FAIRUSE_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "FAIRUSE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "FAIRUSE_DATA_DIR": str(workdir / f"var-{port}"),
        "FAIRUSE_WORKER_APP_ID": app_id,
        "FAIRUSE_WORKER_WEB_PORT": str(port),
        "FAIRUSE_API_TOKEN": TOKEN,
    }
    log = (workdir / f"worker-{port}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "fairuse", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )


async def produce_tenants(kafka: KafkaSettings, tenants: list[str]) -> None:
    producer = AIOKafkaProducer(acks="all", **client_kwargs(kafka))
    await producer.start()
    try:
        for number, tenant in enumerate(tenants):
            event = {"type": "api_call", "event_id": f"b{number}", "tenant_id": tenant}
            event["ts"] = 1_767_268_800_000 + number
            await producer.send_and_wait(
                kafka.topic("events"), orjson.dumps(event), tenant.encode()
            )
    finally:
        await producer.stop()


def url(port: int, tenant: str) -> str:
    return f"http://127.0.0.1:{port}/v1/tenants/{tenant}/decision?metric=api_calls"


async def classify(
    session: aiohttp.ClientSession, ports: list[int], tenants: list[str], deadline_s: float
) -> dict[str, list[str]]:
    """Wait until every worker answers 200 for every tenant; the URLs, local and routed."""
    found: dict[str, list[str]] = {"local": [], "routed": []}
    deadline = time.monotonic() + deadline_s
    for tenant in tenants:
        for port in ports:
            while True:
                try:
                    async with session.get(url(port, tenant)) as response:
                        await response.read()
                        if response.status == 200:
                            kind = "routed" if "Via" in response.headers else "local"
                            found[kind].append(url(port, tenant))
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"no decision for {tenant} on {port} within {deadline_s}s")
                await asyncio.sleep(0.5)
    return found


async def measure(
    session: aiohttp.ClientSession, urls: list[str], requests: int, concurrency: int
) -> tuple[list[float], float]:
    """Latencies (ms) of ``requests`` sequential requests, and requests/s at ``concurrency``."""
    latencies = []
    for number in range(requests):
        started = time.perf_counter()
        async with session.get(urls[number % len(urls)]) as response:
            await response.read()
            assert response.status == 200, response.status
        latencies.append((time.perf_counter() - started) * 1000)
    counter = iter(range(requests))

    async def client() -> None:
        for number in counter:
            async with session.get(urls[number % len(urls)]) as response:
                await response.read()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, requests / (time.perf_counter() - started)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def run(args: argparse.Namespace, kafka: KafkaSettings, ports: list[int]) -> None:
    tenants = [f"bench-{n:03d}" for n in range(args.tenants)]
    await produce_tenants(kafka, tenants)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        found = await classify(session, ports, tenants, args.deadline)
        while (again := await classify(session, ports, tenants, args.deadline)) != found:
            found = again  # a rebalance moved tenants: until two rounds agree
        print(f"tenants {len(tenants)}: {len(found['local'])} local, {len(found['routed'])} routed")
        for kind in ("local", "routed"):
            await measure(session, found[kind], 100, args.concurrency)  # warm-up
        for round_ in range(1, args.rounds + 1):  # alternated: load drifts on a shared machine
            for kind in ("local", "routed"):
                latencies, rate = await measure(
                    session, found[kind], args.requests, args.concurrency
                )
                print(
                    f"round {round_} {kind:6} p50 {percentile(latencies, 50):6.2f} ms  "
                    f"p99 {percentile(latencies, 99):6.2f} ms  "
                    f"{rate:7.0f} requests/s at concurrency {args.concurrency}"
                )
    print("load average: " + " ".join(f"{load:.2f}" for load in os.getloadavg()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=64)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--deadline", type=float, default=600.0, help="s to wait for workers")
    parser.add_argument("--ports", type=int, nargs=2, default=[16101, 16102])
    args = parser.parse_args()
    base = load_settings().kafka
    kafka = KafkaSettings(bootstrap=base.bootstrap, topic_prefix=f"b{uuid.uuid4().hex[:8]}.")
    create_topics(kafka)
    with tempfile.TemporaryDirectory(prefix="fairuse-bench-decision-") as tmp:
        app_id = f"bench-decision-{uuid.uuid4().hex[:8]}"
        workers = [start_worker(kafka, app_id, port, Path(tmp)) for port in args.ports]
        try:
            asyncio.run(run(args, kafka, args.ports))
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(timeout=60)


if __name__ == "__main__":
    main()
