"""Cost of the worker's Prometheus metrics, and the series one worker exposes; prints figures.

0. In one process, no broker: the per-batch metrics work (``tally`` + ``WorkerMetrics.
   batch_done``) against ``StreamCore.process`` of the same batches, alternating, as a share of
   the core's time: an upper bound of the cost in the worker, whose CPU goes to more than the
   core. Stable on a busy machine.
1. Throughput of ``fairuse worker`` over the same pre-produced events with metrics on and off
   (``FAIRUSE_METRICS_ENABLED``), alternating, ``--rounds`` times each, in one run, as
   bench/stream.py measures the worker (fresh topics and group per run; from the first progress
   to everything committed): events/s of wall time and events per CPU-second of the worker
   process (which load on the machine moves least), their medians and ratios, and the cost
   within each round's back-to-back pair.
2. Series per worker: ``/metrics`` of a worker that processed a simulated fleet, counted by
   metric family (``fairuse_*`` and the process's own).

    FAIRUSE_KAFKA_BOOTSTRAP=127.0.0.1:19092 .venv/bin/python bench/metrics.py [--events 200000]
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
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from stream import REPO, fleet, free_port, fresh, lag, produce, start_worker, wait_caught_up

from fairuse.policy import DEFAULT_POLICY
from fairuse.settings import KafkaSettings, load_settings
from fairuse.stream.core import Inbound, StreamCore
from fairuse.stream.metrics import WorkerMetrics, tally

BATCH = 4000  # the worker's default FAIRUSE_WORKER_BATCH_MAX


def in_process_share(pairs: list, kafka: KafkaSettings, rounds: int) -> tuple[float, float]:
    """(core µs per event, metrics µs per event), medians over ``rounds`` passes."""
    topic = kafka.topic("events")
    messages = [Inbound(payload, topic, i % 8, i // 8) for i, (_, payload) in enumerate(pairs)]
    batches = [messages[i : i + BATCH] for i in range(0, len(messages), BATCH)]
    core_s, metrics_s = [], []
    for _ in range(rounds):
        core, metrics = StreamCore(DEFAULT_POLICY, kafka, {}), WorkerMetrics()
        spent_core = spent_metrics = 0.0
        for batch_messages in batches:
            started = time.perf_counter()
            batch = core.process(batch_messages)
            core.commit()
            done = time.perf_counter()
            counts = tally(batch_messages, batch.outputs, kafka.topic_prefix)
            metrics.batch_done(
                counts, redelivered=batch.skipped, event_id_duplicates=0,
                state_bytes=0, changelog_bytes=0, duration_s=done - started,
            )  # fmt: skip
            spent_metrics += time.perf_counter() - done
            spent_core += done - started
        core_s.append(spent_core)
        metrics_s.append(spent_metrics)
    per_event = 1e6 / len(messages)
    return statistics.median(core_s) * per_event, statistics.median(metrics_s) * per_event


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def worker_rates(base: KafkaSettings, pairs: list, workdir: Path) -> tuple[float, float]:
    """A fresh worker over ``pairs``, from its first progress to everything committed: (events/s
    of wall time, events per CPU-second of the worker process). The CPU figure is what load on
    the machine moves least: the wall rate also counts the time other processes had the cores."""
    kafka = await fresh(base)
    await produce(kafka, pairs)
    app_id, total = f"bench-{uuid.uuid4().hex[:8]}", len(pairs)
    worker = start_worker(kafka, app_id, workdir)
    try:
        first: tuple[float, float, int] | None = None
        while True:
            remaining = await lag(kafka, app_id)
            now, cpu = time.monotonic(), cpu_s(worker.pid)
            if first is None and remaining < total:
                first = (now, cpu, total - remaining)
            if remaining == 0:
                assert first is not None
                events = total - first[2]
                return events / (now - first[0]), events / max(cpu - first[1], 1e-9)
            await asyncio.sleep(0.2)
    finally:
        worker.kill()
        worker.wait()


async def rates(base: KafkaSettings, pairs: list, workdir: Path, rounds: int) -> dict[str, list]:
    """Worker (wall events/s, events per CPU-second) with metrics on and off, alternating."""
    found: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
    for _ in range(rounds):
        for mode in ("on", "off"):
            os.environ["FAIRUSE_METRICS_ENABLED"] = "true" if mode == "on" else "false"
            wall, per_cpu = await worker_rates(base, pairs, workdir)
            found[mode].append((wall, per_cpu))
            print(
                f"  metrics {mode:<3} {wall:,.0f} events/s, {per_cpu:,.0f} events per CPU-second",
                flush=True,
            )
    os.environ.pop("FAIRUSE_METRICS_ENABLED", None)
    return found


async def series(base: KafkaSettings, pairs: list, workdir: Path) -> Counter[str]:
    """Samples per metric family on a worker's /metrics after it processed ``pairs``."""
    kafka = await fresh(base)
    await produce(kafka, pairs)
    app_id, port = f"bench-{uuid.uuid4().hex[:8]}", free_port()
    env = {
        **os.environ,
        "FAIRUSE_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "FAIRUSE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "FAIRUSE_KAFKA_EVENTS_PARTITIONS": str(kafka.events_partitions),
        "FAIRUSE_DATA_DIR": str(workdir),
        "FAIRUSE_WORKER_APP_ID": app_id,
        "FAIRUSE_WORKER_WEB_PORT": str(port),
        "FAIRUSE_METRICS_LAG_INTERVAL_S": "1",
    }
    with (workdir / f"{app_id}.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "fairuse", "worker"], env=env, stdout=log, stderr=log, cwd=REPO
        )
    try:
        await wait_caught_up(kafka, app_id, len(pairs), worker)
        await asyncio.sleep(3)  # let the lag timer read the lag once more
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    finally:
        worker.kill()
        worker.wait()
    return Counter(
        family.name for family in text_string_to_metric_families(text) for _ in family.samples
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    base = load_settings().kafka
    workdir = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    _, pairs = fleet(args.events, args.tenants)
    print(
        f"broker {base.bootstrap}, {base.events_partitions} partitions, {len(pairs):,} events "
        f"of {args.tenants} tenants, {args.rounds} rounds, logs in {workdir}"
    )
    core_us, metrics_us = in_process_share(pairs, base, args.rounds)
    print(
        f"in process  core {core_us:.1f} µs/event, metrics {metrics_us:.2f} µs/event: "
        f"{metrics_us / core_us:.1%} of the core's time"
    )
    found = await rates(base, pairs, workdir, args.rounds)
    for index, unit in ((0, "events/s"), (1, "events per CPU-second")):
        on = statistics.median(rate[index] for rate in found["on"])
        off = statistics.median(rate[index] for rate in found["off"])
        # Each round's on/off pair ran back to back: its ratio drifts less with the load.
        costs = [1 - a[index] / b[index] for a, b in zip(found["on"], found["off"], strict=True)]
        print(
            f"throughput  median with metrics {on:,.0f} {unit}, without {off:,.0f}: cost "
            f"{1 - on / off:+.1%}; per round {', '.join(f'{c:+.1%}' for c in costs)}, "
            f"median {statistics.median(costs):+.1%}"
        )
    counts = await series(base, pairs[:20_000], workdir)
    ours = {name: n for name, n in counts.items() if name.startswith("fairuse_")}
    print(
        f"series      {sum(counts.values())} samples per worker on {base.events_partitions} "
        f"partitions, {sum(ours.values())} of them fairuse_* in {len(ours)} families:"
    )
    for name, n in sorted(ours.items(), key=lambda item: (-item[1], item[0])):
        print(f"            {n:4d}  {name}")


if __name__ == "__main__":
    asyncio.run(main())
