"""The worker's processing step without Faust: inbound messages -> ledger -> outbound records.

:class:`StreamCore` drives one :class:`fairuse.ledger.Ledger` whose tenant states live in a byte
store (the changelog-backed Faust table in the worker, a dict in tests and the benchmark). The
caller publishes :attr:`Batch.outputs`, waits until the broker has them, and only then calls
:meth:`StreamCore.commit`, which writes the touched states (see docs/streaming.md, "Delivery").
"""

from __future__ import annotations

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

VIOLATIONS_KEPT = 200
"""How many of a tenant's latest violations the worker keeps for ``GET .../violations``."""


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


def topic_for(record: OutputRecord, kafka: KafkaSettings) -> str:
    """The topic of ``record`` under the configured prefix (``fairuse.violations`` by default)."""
    return kafka.topic(record.TOPIC.removeprefix("fairuse."))


class StreamCore:
    """The ledger over byte-store state, plus the per-tenant violation lists and the watermark."""

    def __init__(
        self,
        policy: Policy,
        kafka: KafkaSettings,
        states: MutableMapping[str, bytes],
        violations: MutableMapping[str, bytes],
    ) -> None:
        self.kafka = kafka
        self.states: StateCache[TenantState] = StateCache(
            states, TenantState.from_bytes, TenantState.to_bytes
        )
        self.violations: StateCache[list[dict]] = StateCache(violations, orjson.loads, orjson.dumps)
        self.ledger = Ledger(policy, self.states)
        self.watermark_ms = 0
        self.partition_of: dict[str, int] = {}

    @property
    def policy(self) -> Policy:
        """The policy in force (a new one applies from the next event)."""
        return self.ledger.policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        self.ledger.policy = policy

    def begin(self) -> None:
        """Start a batch (drops decoded state after a rebalance)."""
        self.states.begin()
        self.violations.begin()

    def process(self, messages: Iterable[Inbound]) -> Batch:
        """Run the ledger over ``messages`` in order; nothing is written to the stores yet."""
        batch = Batch()
        for message in messages:
            batch.events += 1
            parsed = parse_event(message.value)
            if isinstance(parsed, Event):
                self.partition_of[parsed.tenant_id] = message.partition
                self.watermark_ms = max(self.watermark_ms, parsed.ts)
                records = self.ledger.process_event(parsed, message.value, message.source)
            else:
                records = self.ledger.process(message.value, message.source)
            self._emit(records, batch)
        return batch

    def expire_idle(self, owns: Callable[[str], bool] = lambda tenant_id: True) -> Batch:
        """Close sessions silent past their expiry at the event-time watermark.

        Only tenants for which ``owns`` is true are looked at (those on this worker's partitions).
        """
        batch = Batch()
        if self.watermark_ms:
            view = _Owned(self.states, owns)
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
                kept = self.violations.get(tenant) or []
                kept.append(record.to_dict())
                self.violations[tenant] = kept[-VIOLATIONS_KEPT:]

    def usage(self, tenant_id: str) -> dict[str, Any] | None:
        """Live usage of ``tenant_id`` at its latest event time, or None for an unknown tenant."""
        state = self.states.get(tenant_id)
        if state is None:
            return None
        return usage_view(state, self.policy, state.clock_ms)

    def violations_of(self, tenant_id: str) -> list[dict[str, Any]] | None:
        """The tenant's latest violations (oldest first), or None for an unknown tenant."""
        if tenant_id not in self.states:
            return None
        return list(self.violations.get(tenant_id) or [])

    def commit(self) -> list[str]:
        """Write the touched tenants' state and violation lists; return the tenants written."""
        return sorted(set(self.states.flush()) | set(self.violations.flush()))

    def mark_stale(self) -> None:
        """Partitions were reassigned: reload state from the stores at the next batch."""
        self.states.mark_stale()
        self.violations.mark_stale()
        self.partition_of.clear()


class _Owned(MutableMapping[str, TenantState]):
    """The tenants of ``states`` that ``owns`` accepts (for expiry on this worker only)."""

    def __init__(self, states: MutableMapping[str, TenantState], owns: Callable[[str], bool]):
        self._states = states
        self._owns = owns

    def __getitem__(self, key: str) -> TenantState:
        if not self._owns(key):
            raise KeyError(key)
        return self._states[key]

    def __setitem__(self, key: str, value: TenantState) -> None:
        self._states[key] = value

    def __delitem__(self, key: str) -> None:
        del self._states[key]

    def __iter__(self) -> Iterator[str]:
        return (key for key in list(self._states) if self._owns(key))

    def __len__(self) -> int:
        return sum(1 for _ in self)
