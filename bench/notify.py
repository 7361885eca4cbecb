"""Notifier benchmark: deliveries/s to a local webhook receiver, and the time from an
``exceeded`` violation reaching its topic to the webhook received (p50/p99).

    .venv/bin/python bench/notify.py --kafka 127.0.0.1:19092 [--records 3000] [--targets 1 4]
                                     [--latency-samples 300]

Needs a running broker (``make broker-start`` or ``deploy/kafka/start.sh`` on another port);
fresh topics under a random prefix. The notifier runs in this process with its default settings
(4 requests in flight per target); the receiver (aiohttp, verifying every signature with the
``standardwebhooks`` package) shares the process and its core. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiohttp import web
from aiokafka import AIOKafkaProducer
from standardwebhooks.webhooks import Webhook

from fairuse.kafka import client_kwargs
from fairuse.notify.service import Notifier
from fairuse.notify.subscriptions import SubscriptionFile
from fairuse.records import Violation
from fairuse.settings import KafkaSettings, NotifySettings, Settings
from fairuse.topics import create_topics

SECRET = "whsec_" + base64.b64encode(b"benchmark secret of 32 bytes...!").decode()
T0 = 1_793_577_600_000


class Receiver:
    """Counts verified deliveries; keeps arrival time minus the record's publication time."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.delays_ms: list[float] = []
        self.verifier = Webhook(SECRET)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        payload = self.verifier.verify(body, dict(request.headers))
        published = dt.datetime.fromisoformat(payload["timestamp"]).timestamp() * 1000
        self.delays_ms.append(time.time() * 1000 - published)
        self.ids.add(request.headers["webhook-id"])
        return web.Response(status=204)


def _violation(i: int, tag: str) -> Violation:
    return Violation(
        violation_id=f"{tag}-{i}", tenant_id=f"t{i % 50}", metric="api_calls",
        period="2026-11-02", status="exceeded", observed=2500, limit=2400, unit="calls", seats=1,
        policy_revision="r", ts=T0 + i,
    )  # fmt: skip


async def _run(kafka: KafkaSettings, records: int, targets: int, samples: int, tmp: Path) -> None:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook/{n}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    subs = tmp / f"subs-{targets}.toml"
    subs.write_text(
        "".join(
            f'[[subscription]]\nname = "s{n}"\ntenant = "*"\nkinds = ["violation"]\n'
            f'webhook = {{ url = "http://127.0.0.1:{port}/hook/{n}", secret = "{SECRET}" }}\n'
            for n in range(targets)
        )
    )
    notify = NotifySettings(subscriptions=subs, group_id=f"bench-{uuid.uuid4().hex[:8]}")
    notifier = Notifier(Settings(kafka=kafka, notify=notify), SubscriptionFile(subs))
    producer = AIOKafkaProducer(acks="all", linger_ms=5, **client_kwargs(kafka))
    await producer.start()
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))
    topic = kafka.topic("violations")
    try:
        while not notifier.assigned:
            await asyncio.sleep(0.05)
        tag = uuid.uuid4().hex[:6]
        started, cpu = time.perf_counter(), time.process_time()
        futures = [
            await producer.send(topic, _violation(i, tag).to_json(), key=f"t{i % 50}".encode())
            for i in range(records)
        ]
        await asyncio.gather(*futures)
        while notifier.delivered < records * targets:
            await asyncio.sleep(0.01)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        count = records * targets
        print(
            f"throughput, {targets} target(s): {count} deliveries in {elapsed:.1f} s "
            f"= {count / elapsed:,.0f} deliveries/s (produced meanwhile); CPU of this process "
            f"{cpu * 1000 / count:.2f} ms per delivery = {count / cpu:,.0f} deliveries per "
            f"CPU-second (notifier, receiver and producer)"
        )
        if samples:
            receiver.delays_ms.clear()
            base = notifier.delivered
            tag = uuid.uuid4().hex[:6]
            for i in range(samples):
                await producer.send_and_wait(
                    topic, _violation(i, tag).to_json(), key=f"t{i % 50}".encode()
                )
                while notifier.delivered < base + (i + 1) * targets:
                    await asyncio.sleep(0.001)
                await asyncio.sleep(0.02)
            delays = sorted(receiver.delays_ms)
            p50 = statistics.median(delays)
            p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
            print(
                f"latency, {targets} target(s): violation on the topic -> webhook received: "
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(delays)} deliveries "
                f"(one record at a time)"
            )
    finally:
        stop.set()
        await task
        await producer.stop()
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kafka", required=True, help="bootstrap of a running broker")
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--targets", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--latency-samples", type=int, default=300)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for targets in args.targets:
            kafka = KafkaSettings(
                bootstrap=args.kafka, topic_prefix=f"bench{uuid.uuid4().hex[:8]}."
            )
            create_topics(kafka)
            samples = args.latency_samples if targets == args.targets[0] else 0
            asyncio.run(_run(kafka, args.records, targets, samples, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
