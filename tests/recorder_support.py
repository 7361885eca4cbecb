"""Helpers of the recorder and ingest integration tests: read the events topic back, compare
the ledger's output over what arrived with a replay of what was sent."""

from __future__ import annotations

import asyncio
import io
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from fairuse.kafka import client_kwargs
from fairuse.policy import DEFAULT_POLICY
from fairuse.replay import replay
from fairuse.settings import KafkaSettings


async def read_back(settings: KafkaSettings, timeout_s: float = 120) -> list[tuple[bytes, bytes]]:
    """Every record of the events topic, partition by partition, up to the end offsets."""
    topic = settings.topic("events")
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs(settings))
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.events_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: dict[TopicPartition, list[tuple[bytes, bytes]]] = defaultdict(list)
        deadline = time.monotonic() + timeout_s
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            assert time.monotonic() < deadline, "records did not arrive in time"
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, messages in batch.items():
                records[tp].extend((m.key, m.value) for m in messages)
        return [record for tp in partitions for record in records[tp]]
    finally:
        await consumer.stop()


def record_count(settings: KafkaSettings) -> int:
    """How many records the events topic holds (the sum of its end offsets)."""

    async def run() -> int:
        consumer = AIOKafkaConsumer(**client_kwargs(settings))
        await consumer.start()
        try:
            topic = settings.topic("events")
            partitions = [TopicPartition(topic, p) for p in range(settings.events_partitions)]
            return sum((await consumer.end_offsets(partitions)).values())
        finally:
            await consumer.stop()

    return asyncio.run(run())


def stored(settings: KafkaSettings) -> list[tuple[bytes, bytes]]:
    """:func:`read_back`, from synchronous code."""
    return asyncio.run(read_back(settings))


def per_tenant_first_copies(records: Iterable[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    """Per key, the payloads in arrival order with repeats removed; a repeat must be the same
    bytes as its first copy (a redelivery, not a different event under an old id)."""
    first: dict[bytes, bytes] = {}
    kept: dict[bytes, list[bytes]] = defaultdict(list)
    for key, payload in records:
        event_id = orjson.loads(payload)["event_id"]
        seen = first.setdefault(event_id.encode(), payload)
        assert seen == payload, f"event id {event_id} arrived with different content"
        if seen is payload:
            kept[key].append(payload)
    return dict(kept)


def ledger_output(payloads: Iterable[bytes]) -> dict[str, list[str]]:
    """``fairuse replay --usage`` of ``payloads``: sorted records per topic."""
    out = io.BytesIO()
    replay(((p, f"line:{n}") for n, p in enumerate(payloads, 1)), out, DEFAULT_POLICY, usage=True)
    found: dict[str, list[str]] = defaultdict(list)
    for line in out.getvalue().splitlines():
        record = orjson.loads(line)
        topic = record.pop("topic")
        record.pop("source", None)
        record.pop("dead_letter_id", None)
        found[topic].append(orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode())
    return {topic: sorted(rows) for topic, rows in found.items()}


def ndjson_lines(path: Path) -> list[bytes]:
    """The non-empty lines of an NDJSON file."""
    return [line for line in path.read_bytes().splitlines() if line.strip()]
