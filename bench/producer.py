"""Producer throughput of the recorder client against a real broker, one process.

    make broker-start                      # or any broker: FAIRUSE_KAFKA_BOOTSTRAP=host:port
    .venv/bin/python bench/producer.py [--events 500000] [--tenants 12]

Each stage runs on the same simulated events (a fresh topic per run, created and left behind
under a ``bench-...`` prefix) and prints events/s plus the share of one CPU the client process
used (``cpu`` near 1.0 means the client's Python is the limit, well below means it waited on
the broker or the network):

- ``generate``: the simulator alone (pure Python, no I/O);
- ``encode``: ``encode_event`` (orjson) alone, and the old ``asdict`` path for comparison;
- ``send_raw``: one ``await client.send_raw(...)`` per pre-encoded event (aiokafka's per-message
  path);
- ``send_many_raw``: pre-encoded events in whole batches per partition, per compression codec;
- ``send_many``: typed events, encoding included;
- ``simulate->kafka``: what ``fairuse simulate`` does (generate + encode + batch send).

Every stage ends with ``flush()``: a figure counts only events the broker acknowledged
(``acks=all``, idempotent producer).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace

import orjson

from fairuse.errors import BrokerError
from fairuse.events import Event, encode_event
from fairuse.kafka import check_broker
from fairuse.recorder.client import ProducerTuning, RecorderClient
from fairuse.recorder.simulator import Emission, FleetConfig, simulate
from fairuse.settings import KafkaSettings, load_settings
from fairuse.topics import create_topics


def timed(label: str, count: int, run: Callable[[], object]) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    report(label, count, time.perf_counter() - wall, time.process_time() - cpu)


def report(label: str, count: int, wall_s: float, cpu_s: float) -> None:
    print(
        f"{label:<28} {count / wall_s:>12,.0f} events/s  {wall_s:7.2f} s  cpu {cpu_s / wall_s:.2f}",
        flush=True,
    )


async def timed_send(
    label: str,
    count: int,
    settings: KafkaSettings,
    tuning: ProducerTuning,
    body: Callable[[RecorderClient], Awaitable[None]],
) -> None:
    async with RecorderClient(settings, tuning) as client:
        wall, cpu = time.perf_counter(), time.process_time()
        await body(client)
        await client.flush()
        wall_s, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    assert client.delivered == count, (client.delivered, count)
    report(label, count, wall_s, cpu_s)


def asdict_encode(event: Event) -> bytes:
    return orjson.dumps(event.to_dict())


async def send_stages(
    settings: KafkaSettings, emissions: list[Emission], config: FleetConfig
) -> None:
    count = len(emissions)
    events = [e.event for e in emissions if e.event is not None]
    records = [(e.tenant_id.encode(), e.payload) for e in emissions]
    base = ProducerTuning()

    async def one_by_one(client: RecorderClient) -> None:
        for key, payload in records:
            await client.send_raw(key, payload)

    await timed_send("send_raw (lz4)", count, settings, base, one_by_one)
    for codec in ("lz4", "zstd", "gzip", None):
        tuning = replace(base, compression=codec)

        async def batched(client: RecorderClient) -> None:
            await client.send_many_raw(records)

        await timed_send(f"send_many_raw ({codec or 'none'})", count, settings, tuning, batched)

    async def typed(client: RecorderClient) -> None:
        await client.send_many(events)

    await timed_send("send_many (encode+send)", len(events), settings, base, typed)

    async def end_to_end(client: RecorderClient) -> None:
        await client.send_many_raw(
            (e.tenant_id.encode(), e.payload) for e in itertools.islice(simulate(config), count)
        )

    await timed_send("simulate->kafka", count, settings, base, end_to_end)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--tenants", type=int, default=12)
    parser.add_argument("--bootstrap", help="host:port (default: FAIRUSE_KAFKA_BOOTSTRAP)")
    args = parser.parse_args()
    settings = load_settings().kafka
    if args.bootstrap:
        settings = replace(settings, bootstrap=args.bootstrap)
    try:
        asyncio.run(check_broker(settings))
    except BrokerError as exc:
        print(f"bench/producer.py: {exc}\nstart one first: make broker-start", file=sys.stderr)
        return 2
    settings = replace(settings, topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.")
    create_topics(settings)
    config = FleetConfig(tenants=args.tenants, duration_ms=None)
    print(f"broker {settings.bootstrap}, topic {settings.topic('events')} "
          f"({settings.events_partitions} partitions), {args.events:,} events")  # fmt: skip

    emissions: list[Emission] = []
    timed(
        "generate (simulator)",
        args.events,
        lambda: emissions.extend(itertools.islice(simulate(config), args.events)),
    )
    events = [e.event for e in emissions if e.event is not None]
    timed("encode (orjson dataclass)", len(events), lambda: [encode_event(e) for e in events])
    timed("encode (asdict, before)", len(events), lambda: [asdict_encode(e) for e in events])
    size = sum(len(e.payload) for e in emissions) / len(emissions)
    print(f"mean payload {size:.0f} bytes")
    asyncio.run(send_stages(settings, emissions, config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
