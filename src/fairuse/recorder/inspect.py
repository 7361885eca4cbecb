"""``fairuse inspect events``: what reached the events topic, counted per tenant and event type."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from fairuse.errors import BrokerError
from fairuse.events import EVENT_TYPES, Rejection, parse_event
from fairuse.kafka import client_kwargs
from fairuse.recorder.cli import quiet_client_logs
from fairuse.settings import KafkaSettings, load_settings
from fairuse.topics import describe_topics_async

__all__ = ["count_events", "drain_topic", "format_table", "register"]

INVALID = "invalid"
COLUMNS: tuple[str, ...] = (*EVENT_TYPES, INVALID)
LABELS = {  # short column headings
    "session_started": "started",
    "session_heartbeat": "heartbeat",
    "session_stopped": "stopped",
    "api_call": "api_call",
    "call_stored": "stored",
    "call_deleted": "deleted",
    "user_activated": "activated",
    "user_deactivated": "deactivated",
    "usage_notice": "notice",
    INVALID: INVALID,
}
Counts = dict[str, Counter[str]]


def count_events(records: Iterable[tuple[bytes | None, bytes | None]]) -> Counts:
    """Per tenant, how many records of each event type; ``invalid`` counts payloads
    :func:`~fairuse.events.parse_event` rejects (under the record key, else ``?``)."""
    counts: Counts = defaultdict(Counter)
    for key, payload in records:
        parsed = parse_event(payload or b"")
        if isinstance(parsed, Rejection):
            tenant = (key or b"").decode(errors="replace") or parsed.tenant_id or "?"
            counts[tenant][INVALID] += 1
        else:
            counts[parsed.tenant_id][parsed.type] += 1
    return dict(counts)


def format_table(counts: Counts) -> str:
    """A plain-text table: one row per tenant, one column per event type seen, totals."""
    columns = [c for c in COLUMNS if any(row[c] for row in counts.values())]
    header = ["tenant", *(LABELS[c] for c in columns), "total"]
    rows = [
        [tenant, *(str(counts[tenant][c]) for c in columns), str(sum(counts[tenant].values()))]
        for tenant in sorted(counts)
    ]
    totals = Counter[str]()
    for row in counts.values():
        totals.update(row)
    rows.append(["TOTAL", *(str(totals[c]) for c in columns), str(sum(totals.values()))])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows[:-1]), rule, line(rows[-1])])


async def drain_topic(
    settings: KafkaSettings, topic: str, from_beginning: bool, timeout_s: float
) -> tuple[list[tuple[bytes | None, bytes | None]], bool]:
    """Records of ``topic`` and whether it was drained before ``timeout_s``.

    From the beginning: every record up to the end offsets seen at the start. Otherwise: the
    records appended while waiting ``timeout_s`` (a tail).
    """
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs(settings))
    records: list[tuple[bytes | None, bytes | None]] = []
    try:
        async with asyncio.timeout(timeout_s + 15):
            await consumer.start()
            partition_ids = await _partitions(settings, topic)
            partitions = [TopicPartition(topic, p) for p in partition_ids]
            consumer.assign(partitions)
            if from_beginning:
                await consumer.seek_to_beginning(*partitions)
            else:
                await consumer.seek_to_end(*partitions)
            end = await consumer.end_offsets(partitions)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if from_beginning and not [
                    tp for tp in partitions if await consumer.position(tp) < end[tp]
                ]:
                    return records, True
                batch = await consumer.getmany(timeout_ms=200, max_records=50_000)
                for messages in batch.values():
                    records.extend((m.key, m.value) for m in messages)
            return records, not from_beginning
    except (KafkaError, OSError) as exc:
        raise BrokerError(f"cannot read {topic} at {settings.bootstrap}: {exc!r}") from exc
    finally:
        await consumer.stop()


async def _partitions(settings: KafkaSettings, topic: str) -> list[int]:
    found = await describe_topics_async(settings, [topic])
    if topic not in found:
        raise BrokerError(f"topic {topic} does not exist (run 'fairuse topics create')")
    return list(range(found[topic]))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``inspect events``."""
    inspect = subparsers.add_parser("inspect", help="look at what reached Kafka")
    inner = inspect.add_subparsers(dest="what", required=True, metavar="WHAT")
    events = inner.add_parser(
        "events",
        help="count the events topic per tenant and event type",
        description="Consume the events topic and print per-tenant counts by event type.",
    )
    events.add_argument(
        "--from-beginning",
        action="store_true",
        help="read the topic from its start until drained (default: tail for --timeout)",
    )
    events.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to read at most (default 30)"
    )
    events.set_defaults(func=run_inspect_events)


def run_inspect_events(args: argparse.Namespace) -> int:
    """Handler of ``fairuse inspect events``; exit 1 if not drained before the timeout."""
    quiet_client_logs()
    settings = load_settings().kafka
    topic = settings.topic("events")
    records, drained = asyncio.run(drain_topic(settings, topic, args.from_beginning, args.timeout))
    counts = count_events(records)
    print(f"{topic}: {len(records):,} records from {len(counts)} tenants")
    if counts:
        print(format_table(counts))
    if not drained:
        print(f"fairuse inspect: {topic} not drained within {args.timeout:g} s", file=sys.stderr)
        return 1
    return 0
