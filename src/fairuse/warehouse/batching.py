"""Per-partition batches with reproducible boundaries (pure: no I/O, time passed in).

A batch holds consecutive messages of one topic-partition and is cut by size (``max_rows``) or
age (``max_ms``). Before a batch is inserted the sink records its last offset (its *plan*) in the
consumer group's commit metadata; after a crash the sink reads the plans back and this batcher cuts
the replayed messages at exactly the same offsets, so every insert repeats with the same content
and the same deduplication token and ClickHouse drops the copy.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from fairuse.warehouse.rows import Row, message_row

PLAN_PREFIX = "fairuse-sink plan"

TopicPartition = tuple[str, int]


@dataclass(slots=True)
class PartitionBatch:
    """Consecutive messages ``first..last`` of one topic-partition, as rows per table."""

    topic: str
    partition: int
    first: int
    last: int
    started_s: float
    rows: dict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))
    count: int = 0

    def token(self, table: str) -> str:
        """The insert deduplication token of this batch's rows for ``table``."""
        return f"{self.topic}-{self.partition}-{self.first}-{self.last}-{table}"


def encode_plan(lasts: list[int]) -> str:
    """Commit metadata naming the last offsets of the batches about to be inserted."""
    return f"{PLAN_PREFIX} {' '.join(str(n) for n in lasts)}"


def decode_plan(metadata: str | None) -> list[int]:
    """The planned last offsets in commit metadata (empty when there is no plan)."""
    if not metadata or not metadata.startswith(PLAN_PREFIX):
        return []
    return [int(n) for n in metadata[len(PLAN_PREFIX) :].split()]


class Batcher:
    """Collects messages into :class:`PartitionBatch` es and says which are due for flushing."""

    def __init__(self, topic_tables: dict[str, str], max_rows: int, max_ms: int) -> None:
        self._topic_tables = topic_tables
        self._max_rows = max_rows
        self._max_s = max_ms / 1000
        self._open: dict[TopicPartition, PartitionBatch] = {}
        self._ready: list[PartitionBatch] = []
        self._plans: dict[TopicPartition, list[int]] = {}

    def set_plan(self, tp: TopicPartition, lasts: list[int]) -> None:
        """Cut ``tp``'s next batches at ``lasts`` (read back from commit metadata)."""
        if lasts:
            self._plans[tp] = sorted(lasts)
        else:
            self._plans.pop(tp, None)

    def forget(self, tps: list[TopicPartition] | None = None) -> None:
        """Drop unflushed batches and plans (of ``tps``, or all): they will be consumed again."""
        keep = (lambda tp: False) if tps is None else (lambda tp: tp not in tps)
        self._open = {tp: b for tp, b in self._open.items() if keep(tp)}
        self._ready = [b for b in self._ready if keep((b.topic, b.partition))]
        self._plans = {tp: p for tp, p in self._plans.items() if keep(tp)}

    def add(self, topic: str, partition: int, offset: int, value: bytes | None, now_s: float):
        """Add one consumed message."""
        tp = (topic, partition)
        plan = self._plans.get(tp)
        while plan and offset > plan[0]:  # the planned end was passed (e.g. a gap): cut before
            plan.pop(0)
            self._close(tp)
        batch = self._open.get(tp)
        if batch is None:
            batch = self._open[tp] = PartitionBatch(topic, partition, offset, offset, now_s)
        table, row = message_row(
            self._topic_tables[topic], value or b"", f"{topic}/{partition}/{offset}"
        )
        batch.rows[table].append(row)
        batch.last = offset
        batch.count += 1
        if plan:
            if offset == plan[0]:
                plan.pop(0)
                self._close(tp)
        elif batch.count >= self._max_rows:
            self._close(tp)
        if plan is not None and not plan:
            del self._plans[tp]

    def _close(self, tp: TopicPartition) -> None:
        batch = self._open.pop(tp, None)
        if batch is not None:
            self._ready.append(batch)

    def due(self, now_s: float, *, drain: bool = False) -> list[PartitionBatch]:
        """Batches to flush: full, planned, older than ``max_ms``, or unplanned (``drain``)."""
        for tp, batch in list(self._open.items()):
            # A batch replaying a plan is only cut at the planned offset, never early.
            if tp not in self._plans and (drain or now_s - batch.started_s >= self._max_s):
                self._close(tp)
        ready, self._ready = self._ready, []
        return ready

    @property
    def pending(self) -> int:
        """Messages held and not yet returned by :meth:`due`."""
        return sum(b.count for b in self._open.values()) + sum(b.count for b in self._ready)
