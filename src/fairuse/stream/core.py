"""The worker's processing step without Faust: inbound messages -> ledger -> outbound records.

:class:`StreamCore` drives one :class:`fairuse.ledger.Ledger` whose tenant states live in a byte
store (the changelog-backed Faust table in the worker, a dict in tests and the benchmark). Each
stored value is a :class:`TenantEntry`: the ledger's state, the partition and offset of the last
event applied to it, and the tenant's latest violations, in one record so they change together.

:meth:`StreamCore.commit` returns the batch's state changes as :class:`StateWrite` records
without writing them: the caller makes outputs, state writes and offsets durable together (one
Kafka transaction) and then applies the writes to its store (see docs/streaming.md, "Delivery").
After a crash, events at or below an entry's offset are skipped: their effects and outputs are
already durable. This does not rely on the ledger's event-id dedup, whose horizon is event time
(7 days) and is too short when a backlog is processed faster than real time.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from fairuse.events import Event, parse_event
from fairuse.ledger import Ledger, TenantState, usage_view
from fairuse.policy import Policy
from fairuse.records import OutputRecord, Violation
from fairuse.settings import KafkaSettings
from fairuse.stream.state import StateCache

VIOLATIONS_KEPT = 100
"""How many of a tenant's latest violations the worker keeps for ``GET .../violations``."""

_HEADER = struct.Struct(">iqI")  # partition, offset, length of the state bytes

KEY_SEPARATOR = "|"
"""Separates the tenant id from the rest of a state key (tenant ids never contain it)."""


@dataclass(frozen=True, slots=True)
class StateWrite:
    """One state change as a changelog record: ``value=None`` deletes the key (a tombstone);
    ``partition`` is the events partition of the key's tenant (= its changelog partition)."""

    key: str
    value: bytes | None
    partition: int


def tenant_of_key(key: str) -> str:
    """The tenant a state key belongs to."""
    return key.split(KEY_SEPARATOR, 1)[0]


def apply_writes(store: MutableMapping[str, bytes], writes: Iterable[StateWrite]) -> None:
    """Apply committed ``writes`` to a dict-like store (tests, benchmarks)."""
    for write in writes:
        if write.value is None:
            store.pop(write.key, None)
        else:
            store[write.key] = write.value


@dataclass(slots=True)
class TenantEntry:
    """What the worker stores per tenant (one table value, one changelog record)."""

    state: TenantState
    partition: int = -1
    offset: int = -1
    violations: list[dict[str, Any]] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        """Header (partition, offset, state length), the state bytes, the violations JSON."""
        state = self.state.to_bytes()
        header = _HEADER.pack(self.partition, self.offset, len(state))
        return header + state + orjson.dumps(self.violations)

    @classmethod
    def from_bytes(cls, data: bytes) -> TenantEntry:
        """Rebuild an entry written by :meth:`to_bytes`."""
        partition, offset, length = _HEADER.unpack_from(data)
        start = _HEADER.size
        state = TenantState.from_bytes(data[start : start + length])
        violations = orjson.loads(data[start + length :])
        return cls(state, partition, offset, violations)


@dataclass(frozen=True, slots=True)
class Inbound:
    """One consumed message of the events topic."""

    value: bytes
    topic: str
    partition: int
    offset: int

    @property
    def source(self) -> str:
        """Where the message came from, ``topic/partition/offset`` (dead letters carry it)."""
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True, slots=True)
class Outbound:
    """One record to publish."""

    topic: str
    key: bytes
    value: bytes


@dataclass(slots=True)
class Batch:
    """What one batch produced: the records to publish, in order."""

    outputs: list[Outbound] = field(default_factory=list)
    events: int = 0
    skipped: int = 0


def topic_for(record: OutputRecord, kafka: KafkaSettings) -> str:
    """The topic of ``record`` under the configured prefix (``fairuse.violations`` by default)."""
    return kafka.topic(record.TOPIC.removeprefix("fairuse."))


class _LedgerStates(MutableMapping[str, TenantState]):
    """The ledger's view of the entries: their states; ``owns`` filters iteration (expiry)."""

    def __init__(
        self,
        entries: MutableMapping[str, TenantEntry],
        owns: Callable[[TenantEntry], bool] | None = None,
    ) -> None:
        self._entries = entries
        self._owns = owns

    def __getitem__(self, key: str) -> TenantState:
        return self._entries[key].state

    def __setitem__(self, key: str, value: TenantState) -> None:
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = TenantEntry(value)
        else:
            entry.state = value

    def __delitem__(self, key: str) -> None:
        del self._entries[key]

    def __iter__(self) -> Iterator[str]:
        if self._owns is None:
            return iter(self._entries)
        owns, entries = self._owns, self._entries
        return (key for key in list(entries) if owns(entries[key]))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class StreamCore:
    """The ledger over byte-store entries, plus the event-time watermark."""

    def __init__(
        self, policy: Policy, kafka: KafkaSettings, store: MutableMapping[str, bytes]
    ) -> None:
        self.kafka = kafka
        self.entries: StateCache[TenantEntry] = StateCache(
            store, TenantEntry.from_bytes, TenantEntry.to_bytes
        )
        self.ledger = Ledger(policy, _LedgerStates(self.entries))
        self.watermark_ms = 0
        self.skipped = 0

    @property
    def policy(self) -> Policy:
        """The policy in force (a new one applies from the next event)."""
        return self.ledger.policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        self.ledger.policy = policy

    def process(self, messages: Iterable[Inbound]) -> Batch:
        """Run the ledger over ``messages`` in order; nothing is written to the store yet."""
        batch = Batch()
        entries = self.entries
        for message in messages:
            batch.events += 1
            parsed = parse_event(message.value)
            if not isinstance(parsed, Event):
                self._emit(self.ledger.process(message.value, message.source), batch)
                continue
            tenant_id = parsed.tenant_id
            entry = entries.get(tenant_id)
            if (
                entry is not None
                and entry.partition == message.partition
                and message.offset <= entry.offset
            ):
                batch.skipped += 1  # applied before a crash; its outputs are published
                continue
            if parsed.ts > self.watermark_ms:
                self.watermark_ms = parsed.ts
            records = self.ledger.process_event(parsed, message.value, message.source)
            entry = entries.get(tenant_id)
            if entry is not None:
                entry.partition, entry.offset = message.partition, message.offset
            self._emit(records, batch)
        self.skipped += batch.skipped
        return batch

    def expire_idle(self, owns: Callable[[int], bool] = lambda partition: True) -> Batch:
        """Close sessions silent past their expiry at the event-time watermark.

        Only tenants whose events partition ``owns`` accepts are looked at (this worker's).
        """
        batch = Batch()
        if self.watermark_ms:
            view = _LedgerStates(self.entries, lambda entry: owns(entry.partition))
            expiring = Ledger(self.ledger.policy, view)
            self._emit(expiring.expire_idle(self.watermark_ms), batch)
        return batch

    def _emit(self, records: Sequence[OutputRecord], batch: Batch) -> None:
        for record in records:
            tenant = record.tenant_id
            batch.outputs.append(
                Outbound(topic_for(record, self.kafka), tenant.encode(), record.to_json())
            )
            if isinstance(record, Violation):
                entry = self.entries.get(tenant)
                if entry is not None and all(
                    v["violation_id"] != record.violation_id for v in entry.violations
                ):
                    entry.violations.append(record.to_dict())
                    del entry.violations[:-VIOLATIONS_KEPT]

    def partition_of(self, tenant_id: str) -> int | None:
        """The events partition of ``tenant_id`` if its entry is loaded, else None."""
        entry = self.entries.peek(tenant_id)
        return None if entry is None or entry.partition < 0 else entry.partition

    def usage(self, tenant_id: str) -> dict[str, Any] | None:
        """Live usage of ``tenant_id`` at its latest event time, or None for an unknown tenant."""
        entry = self.entries.get(tenant_id)
        if entry is None:
            return None
        return usage_view(entry.state, self.policy, entry.state.clock_ms)

    def violations_of(self, tenant_id: str) -> list[dict[str, Any]] | None:
        """The tenant's latest violations (oldest first), or None for an unknown tenant."""
        entry = self.entries.get(tenant_id)
        return None if entry is None else list(entry.violations)

    def commit(self) -> list[StateWrite]:
        """Every state change since the last commit/discard, as changelog records; nothing is
        written to the store (the caller applies them once they are durable)."""
        writes = []
        for key, raw in self.entries.changes():
            entry = self.entries.peek(key)
            partition = entry.partition if entry is not None else -1
            writes.append(StateWrite(key, raw, partition))
        return writes

    def discard(self) -> None:
        """The batch was not made durable (or partitions moved): forget decoded and dirty
        state; the next batch reloads from the store."""
        self.entries.discard()
