"""The worker's Prometheus metrics: definitions and the small API the worker feeds them with.

Every name starts with ``fairuse_worker_`` and carries its unit (``_total``, ``_seconds``,
``_bytes``, ``_messages``, ``_events``). Labels have bounded values only: event types, rejection
reasons, metrics, statuses, enforcement kinds and actions (each a closed set; anything else is
counted as ``other``) and partition numbers (at most the events topic's partition count). No
tenant id is ever a label. docs/operations.md lists every series.

:func:`tally` derives a batch's counts from its inbound messages and outbound records without
touching the core: an event's type is read from the payload's prefix (the recorder writes
``{"type":"...",`` first; other payloads are parsed), and only dead letters, violations and
enforcement records (rare) are decoded.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import get_args

import orjson
from prometheus_client import Counter as CounterMetric
from prometheus_client import Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from fairuse.events import EVENT_TYPES, Metric, RejectionReason
from fairuse.health import new_registry
from fairuse.records import EnforcementAction, EnforcementKind, Status
from fairuse.stream.core import Inbound, Outbound

OTHER = "other"
EVENT_TYPE_LABELS = (*EVENT_TYPES, OTHER)
REASON_LABELS = (*get_args(RejectionReason), OTHER)
METRIC_LABELS = (*get_args(Metric), OTHER)
STATUS_LABELS = (*get_args(Status), OTHER)
KIND_LABELS = (*get_args(EnforcementKind), OTHER)
ACTION_LABELS = (*get_args(EnforcementAction), OTHER)
RECORD_LABELS = ("usage", "violations", "enforcement", "dead-letter", "statements", OTHER)
DUPLICATE_LABELS = ("redelivered", "event_id")

BATCH_EVENT_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000)
BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

_TYPE_PREFIX = b'{"type":"'
_HEAD = 29  # the prefix, the longest type (16 bytes) and the closing quote, with room to spare
_KNOWN_TYPES = {kind.encode(): kind for kind in EVENT_TYPES}


def _label(value: object, allowed: Sequence[str]) -> str:
    return value if isinstance(value, str) and value in allowed else OTHER


def event_type(payload: bytes) -> str:
    """The event type label of ``payload``: its ``type`` if known, else ``other``."""
    if payload.startswith(_TYPE_PREFIX):
        end = payload.find(b'"', 9, 40)
        kind = _KNOWN_TYPES.get(payload[9:end]) if end > 0 else None
        if kind is not None:
            return kind
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return OTHER
    return _label(obj.get("type") if isinstance(obj, dict) else None, EVENT_TYPE_LABELS)


def _event_ms(payload: bytes) -> int | None:
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    ts = obj.get("ts") if isinstance(obj, dict) else None
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else None


@dataclass(slots=True)
class BatchTally:
    """What one batch consumed and produced, by label."""

    events_by_type: Counter[str] = field(default_factory=Counter)
    dead_letters_by_reason: Counter[str] = field(default_factory=Counter)
    records_by_topic: Counter[str] = field(default_factory=Counter)
    violations: Counter[tuple[str, str]] = field(default_factory=Counter)  # (metric, status)
    enforcement: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, action)
    newest_ms_by_partition: dict[int, int] = field(default_factory=dict)


def _events_by_type(messages: Sequence[Inbound]) -> Counter[str]:
    # Counting the payloads' first 29 bytes keeps the per-message work in C: for the recorder's
    # encoding they are `{"type":"<type>","` plus the start of the next field, a handful of
    # distinct keys. Keys that are not such a prefix are resolved message by message.
    heads = Counter(m.value[:_HEAD] for m in messages)
    found: Counter[str] = Counter()
    odd: set[bytes] = set()
    for head, count in heads.items():
        kind = (
            _KNOWN_TYPES.get(head[9:].split(b'"', 1)[0]) if head.startswith(_TYPE_PREFIX) else None
        )
        if kind is not None and head[9 + len(kind) : 9 + len(kind) + 1] == b'"':
            found[kind] += count
        else:
            odd.add(head)
    if odd:
        found.update(event_type(m.value) for m in messages if m.value[:_HEAD] in odd)
    return found


def tally(messages: Sequence[Inbound], outputs: Sequence[Outbound], prefix: str) -> BatchTally:
    """Count ``messages`` by event type and ``outputs`` by topic (names under ``prefix``),
    dead letters by reason, violations by metric and status, enforcement by kind and action.

    The newest event time per partition is sampled from each partition's last message.
    """
    result = BatchTally(events_by_type=_events_by_type(messages))
    last: dict[int, bytes] = {m.partition: m.value for m in messages}
    for partition, payload in last.items():
        ms = _event_ms(payload)
        if ms is not None:
            result.newest_ms_by_partition[partition] = ms
    usage = f"{prefix}usage"
    for topic, count in Counter(out.topic for out in outputs).items():
        result.records_by_topic[_label(topic.removeprefix(prefix), RECORD_LABELS)] += count
    for out in outputs:
        if out.topic == usage:
            continue
        name, record = out.topic.removeprefix(prefix), orjson.loads(out.value)
        if name == "dead-letter":
            result.dead_letters_by_reason[_label(record.get("reason"), REASON_LABELS)] += 1
        elif name == "violations":
            metric = _label(record.get("metric"), METRIC_LABELS)
            result.violations[metric, _label(record.get("status"), STATUS_LABELS)] += 1
        elif name == "enforcement":
            kind = _label(record.get("kind"), KIND_LABELS)
            result.enforcement[kind, _label(record.get("action"), ACTION_LABELS)] += 1
    return result


class WorkerMetrics:
    """The worker's metrics on their own registry (``registry`` is what ``/metrics`` serves)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.registry = new_registry()
        self._clock = clock
        self._newest_ms: dict[int, int] = {}
        self._lag: dict[int, int] = {}
        reg = self.registry
        self.events = CounterMetric(
            "fairuse_worker_events",
            "Events consumed from the events topic, by event type (other: unknown or unparsable)",
            ["type"],
            registry=reg,
        )
        self.duplicates = CounterMetric(
            "fairuse_worker_duplicates_dropped",
            "Events dropped as duplicates: redelivered (offset already applied) or event_id "
            "(the ledger's event-id deduplication)",
            ["cause"],
            registry=reg,
        )
        self.dead_letters = CounterMetric(
            "fairuse_worker_dead_letters",
            "Dead letters published, by rejection reason",
            ["reason"],
            registry=reg,
        )
        self.records = CounterMetric(
            "fairuse_worker_records_published",
            "Output records published, by topic (without the prefix)",
            ["topic"],
            registry=reg,
        )
        self.violations = CounterMetric(
            "fairuse_worker_violations",
            "Violation records published, by metric and status",
            ["metric", "status"],
            registry=reg,
        )
        self.enforcement = CounterMetric(
            "fairuse_worker_enforcement",
            "Enforcement records published, by kind (notice, action) and action",
            ["kind", "action"],
            registry=reg,
        )
        self.batch_events = Histogram(
            "fairuse_worker_batch_events",
            "Events per processed batch",
            buckets=BATCH_EVENT_BUCKETS,
            registry=reg,
        )
        self.batch_duration = Histogram(
            "fairuse_worker_batch_duration_seconds",
            "From a batch's start to its offsets committed (outputs and state acknowledged)",
            buckets=BATCH_SECONDS_BUCKETS,
            registry=reg,
        )
        self.consumer_lag = Gauge(
            "fairuse_worker_consumer_lag_messages",
            "Events not yet committed by the worker group, per assigned events partition",
            ["partition"],
            registry=reg,
        )
        self.state_bytes = Gauge(
            "fairuse_worker_state_bytes",
            "Size of the latest state record of every tenant this worker wrote",
            registry=reg,
        )
        self.changelog_bytes = CounterMetric(
            "fairuse_worker_changelog_written_bytes",
            "Bytes of state records written to the changelog topic",
            registry=reg,
        )
        self.assigned_partitions = Gauge(
            "fairuse_worker_assigned_partitions",
            "Events partitions assigned to this worker",
            registry=reg,
        )
        self.ready = Gauge(
            "fairuse_worker_ready",
            "1 when /readyz answers 200 (partitions assigned, recovery finished, policy loaded)",
            registry=reg,
        )
        reg.register(_EventTimeCollector(self))
        for kind in EVENT_TYPE_LABELS:
            self.events.labels(kind)
        for cause in DUPLICATE_LABELS:
            self.duplicates.labels(cause)
        for reason in REASON_LABELS:
            self.dead_letters.labels(reason)
        for name in RECORD_LABELS:
            self.records.labels(name)
        for metric in get_args(Metric):
            for status in get_args(Status):
                self.violations.labels(metric, status)
        for kind in get_args(EnforcementKind):
            for action in get_args(EnforcementAction):
                self.enforcement.labels(kind, action)

    def batch_done(
        self,
        batch: BatchTally,
        *,
        redelivered: int,
        event_id_duplicates: int,
        state_bytes: int,
        changelog_bytes: int,
        duration_s: float,
    ) -> None:
        """Record a batch whose offsets were committed."""
        for kind, n in batch.events_by_type.items():
            self.events.labels(kind).inc(n)
        if redelivered:
            self.duplicates.labels("redelivered").inc(redelivered)
        if event_id_duplicates:
            self.duplicates.labels("event_id").inc(event_id_duplicates)
        for reason, n in batch.dead_letters_by_reason.items():
            self.dead_letters.labels(reason).inc(n)
        for name, n in batch.records_by_topic.items():
            self.records.labels(name).inc(n)
        for (metric, status), n in batch.violations.items():
            self.violations.labels(metric, status).inc(n)
        for (kind, action), n in batch.enforcement.items():
            self.enforcement.labels(kind, action).inc(n)
        self.batch_events.observe(sum(batch.events_by_type.values()))
        self.batch_duration.observe(duration_s)
        self.state_bytes.set(state_bytes)
        if changelog_bytes:
            self.changelog_bytes.inc(changelog_bytes)
        self.event_time(batch.newest_ms_by_partition)

    def event_time(self, newest_ms_by_partition: Mapping[int, int]) -> None:
        """Advance each partition's newest processed event time (never backwards)."""
        for partition, ms in newest_ms_by_partition.items():
            if ms > self._newest_ms.get(partition, 0):
                self._newest_ms[partition] = ms

    def partition_lag(self, lag_by_partition: Mapping[int, int]) -> None:
        """Set the consumer lag of the assigned partitions; forget the others' series."""
        for partition in set(self._lag) - set(lag_by_partition):
            self.consumer_lag.remove(str(partition))
        self._lag = dict(lag_by_partition)
        for partition, lag in self._lag.items():
            self.consumer_lag.labels(str(partition)).set(lag)

    def assigned(self, partitions: Iterable[int]) -> None:
        """The partitions assigned now: the series of partitions that moved away are dropped."""
        owned = set(partitions)
        self.assigned_partitions.set(len(owned))
        self._newest_ms = {p: ms for p, ms in self._newest_ms.items() if p in owned}
        self.partition_lag({p: lag for p, lag in self._lag.items() if p in owned})

    def event_time_samples(self) -> tuple[dict[int, float], dict[int, float]]:
        """Per partition: newest event time (s since the epoch) and its lag behind the clock."""
        now = self._clock()
        newest = {p: ms / 1000 for p, ms in self._newest_ms.items()}
        return newest, {p: max(0.0, now - s) for p, s in newest.items()}


class _EventTimeCollector(Collector):
    """Event time per partition, its lag computed against the wall clock at scrape time."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[GaugeMetricFamily]:
        return list(self._families({}, {}))

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return self._families(*self._metrics.event_time_samples())

    @staticmethod
    def _families(
        newest: Mapping[int, float], lag: Mapping[int, float]
    ) -> Iterable[GaugeMetricFamily]:
        time_family = GaugeMetricFamily(
            "fairuse_worker_newest_event_time_seconds",
            "Newest event time processed per events partition (seconds since the epoch)",
            labels=["partition"],
        )
        lag_family = GaugeMetricFamily(
            "fairuse_worker_event_time_lag_seconds",
            "Wall clock minus the newest event time processed, per events partition",
            labels=["partition"],
        )
        for partition in sorted(newest):
            time_family.add_metric([str(partition)], newest[partition])
            lag_family.add_metric([str(partition)], lag[partition])
        return [time_family, lag_family]
