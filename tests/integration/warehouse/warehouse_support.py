"""Helpers of the warehouse integration tests: a known mixed data set, producing, polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaProducer

from fairuse.events import ApiCall, SessionStarted, encode_event
from fairuse.kafka import client_kwargs
from fairuse.records import Enforcement, UsageAccrual, Violation, dead_letter
from fairuse.settings import KafkaSettings
from fairuse.warehouse.batching import Batcher
from fairuse.warehouse.client import connect
from fairuse.warehouse.migrate import migrate
from fairuse.warehouse.sink import BatchWriter

BASE_MS = 1_793_577_600_000  # 2026-11-02T00:00:00Z


@dataclass
class DataSet:
    """Messages to publish and what the warehouse must hold afterwards."""

    messages: list[tuple[str, bytes, bytes, int | None]]
    events: int
    usage: int
    violations: int
    enforcement: int
    dead_letters: int


def mixed(tag: str, events: int = 120, partition: int | None = None) -> DataSet:
    """``events`` valid events plus usage, violations (each twice), enforcement and garbage."""
    messages: list[tuple[str, bytes, bytes, int | None]] = []
    for i in range(events):
        tenant = f"{tag}-t{i % 4}"
        if i % 3 == 0:
            event = SessionStarted(
                event_id=f"{tag}-e{i}", tenant_id=tenant, ts=BASE_MS + i * 1000,
                session_id=f"s{i}", user_id=f"u{i % 7}", media="video",
            )  # fmt: skip
        else:
            event = ApiCall(event_id=f"{tag}-e{i}", tenant_id=tenant, ts=BASE_MS + i, count=i)
        messages.append(("events", tenant.encode(), encode_event(event), partition))
    for raw in (b"not json", b'{"type": "nope", "tenant_id": "x"}', b"[1, 2]"):
        messages.append(("events", b"x", raw, partition))
    for i in range(40):
        accrual = UsageAccrual(
            tenant_id=f"{tag}-t{i % 4}", metric="audio_hours", day=f"2026-11-{1 + i % 28:02d}",
            weighted_ms=1500.5 * i, raw_ms=1000 * i, session_id=f"s{i}", user_id=f"u{i % 5}",
            event_id=f"{tag}-h{i}",
        )  # fmt: skip
        messages.append(("usage", accrual.tenant_id.encode(), accrual.to_json(), None))
    messages.append(("usage", b"x", b'{"tenant_id": "x", "metric": 3}', None))
    for i in range(6):
        violation = Violation(
            violation_id=f"{tag}-v{i}", tenant_id=f"{tag}-t{i % 2}", metric="video_hours",
            period="2026-11", status="exceeded", observed=120.0 + i, limit=110.0, unit="hours",
            seats=3, policy_revision="r1", ts=BASE_MS + i,
        )  # fmt: skip
        for _ in range(2):  # published twice, as after a crash of the core
            messages.append(("violations", violation.tenant_id.encode(), violation.to_json(), None))
    for i in range(3):
        step = Enforcement(
            enforcement_id=f"{tag}-n{i}", tenant_id=f"{tag}-t0", kind="notice", action="throttle",
            ts=BASE_MS + i, effective_at=BASE_MS + 14 * 86_400_000, strikes=("a", "b"),
        )  # fmt: skip
        messages.append(("enforcement", b"t0", step.to_json(), None))
    for i in range(2):
        letter = dead_letter(b"\xff\xfe", "bad_json", "bad", source=f"{tag}/0/{i}", tenant_id="t")
        messages.append(("dead-letter", b"t", letter.to_json(), None))
    return DataSet(
        messages=messages, events=events, usage=40, violations=6, enforcement=3,
        dead_letters=3 + 1 + 2,
    )  # fmt: skip


def wait_until(check: Callable[[], bool], timeout_s: float = 60, what: str = "condition") -> None:
    """Poll ``check`` until it is true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.2)


Message = tuple[str, bytes, bytes, int | None]  # topic name, key, value, partition


async def _produce(settings: KafkaSettings, messages: list[Message]) -> None:
    producer = AIOKafkaProducer(acks="all", **client_kwargs(settings))
    await producer.start()
    try:
        for name, key, value, partition in messages:
            await producer.send(settings.topic(name), value, key=key, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


def produce(settings: KafkaSettings, messages: list[Message]) -> None:
    """Publish ``messages`` (waiting for the broker's acknowledgement of each)."""
    asyncio.run(_produce(settings, messages))


def store_batches(dsn: str, batcher: Batcher) -> None:
    """Migrate the store at ``dsn`` and write every batch ``batcher`` holds, as the sink does."""
    client = connect(dsn)
    try:
        migrate(client, events_ttl_days=0)
        writer = BatchWriter(client)

        async def write_all() -> None:
            for batch in batcher.due(0.0, drain=True):
                await writer.write(batch)

        asyncio.run(write_all())
    finally:
        client.close()
