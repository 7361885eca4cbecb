"""The worker's processing step without Faust: inbound messages -> ledger -> outbound records.

:class:`StreamCore` drives one :class:`fairuse.ledger.Ledger` over a byte store it only reads
(:class:`StateReader`: the worker's table store, a dict in tests and benchmarks). A tenant's
state is one small entry, ``{tenant}/e`` (:class:`TenantEntry`: the ledger's
:class:`~fairuse.ledger.state.TenantState` plus the partition and offset of the last event
applied to it), and keyed items under ``{tenant}/{kind}/...`` (see :mod:`fairuse.ledger.keyed`).

:meth:`StreamCore.process` changes decoded entries and an overlay of keys in memory;
:meth:`StreamCore.commit` returns every change since the last commit as :class:`StateWrite`
records (``value=None`` deletes) and forgets them. The caller makes a batch durable (outputs,
then these writes on the changelog, then offsets, or all in one transaction), then applies the
writes to its store (:func:`apply_writes` for a dict), so later reads see them; or calls
:meth:`StreamCore.discard` to drop the batch. A caller that processes the next batch before
the writes reach the store holds them (:meth:`StreamCore.hold`, read in front of the store)
until applied (:meth:`StreamCore.release`). After a crash, events at or below an entry's offset
are skipped: their effects and outputs are already durable. This does not rely on the ledger's
event-id dedup, whose horizon is event time (7 days) and is too short when a backlog is processed
faster than real time.

Entries written by the previous version (key ``{tenant}``, the whole state with every call id in
one record) are read and converted: the next commit writes the new entry and keys and deletes
the old key. The recent violations shown by ``GET .../violations`` are kept in memory only.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fairuse.events import Event, parse_event
from fairuse.ledger import Ledger, TenantState, usage_view
from fairuse.ledger.decision import decide
from fairuse.ledger.keyed import SEP
from fairuse.policy import Policy
from fairuse.records import OutputRecord, Violation
from fairuse.settings import KafkaSettings

VIOLATIONS_KEPT = 100
"""How many of a tenant's latest violations the worker keeps for ``GET .../violations``."""

CACHED_TENANTS = 4096
"""How many decoded tenant entries a core keeps between batches (the rest are read again)."""

_HEADER = struct.Struct(">iq")  # partition, offset
_LEGACY_HEADER = struct.Struct(">iqI")  # partition, offset, length of the state bytes


class StateReader(Protocol):
    """Read access to the worker's local state store."""

    def get(self, key: str) -> bytes | None:
        """The stored value of ``key``, or None."""


@dataclass(frozen=True, slots=True)
class StateWrite:
    """One changelog record: ``key`` set to ``value`` (None: deleted) on ``partition``, the
    events partition of the key's tenant."""

    key: str
    value: bytes | None
    partition: int


def tenant_of_key(key: str) -> str:
    """The tenant a state key belongs to (every key starts with ``{tenant}/``)."""
    return key.split(SEP, 1)[0]


def entry_key(tenant_id: str) -> str:
    """The key of a tenant's entry."""
    return f"{tenant_id}{SEP}e"


def apply_writes(store: MutableMapping[str, bytes], writes: Iterable[StateWrite]) -> None:
    """Apply committed writes to a dict-like store."""
    for write in writes:
        if write.value is None:
            store.pop(write.key, None)
        else:
            store[write.key] = write.value


@dataclass(slots=True)
class TenantEntry:
    """What the worker stores under ``{tenant}/e``: the state, and the last event applied."""

    state: TenantState
    partition: int = -1
    offset: int = -1

    def to_bytes(self) -> bytes:
        """Header (partition, offset), then the state's bytes."""
        return _HEADER.pack(self.partition, self.offset) + self.state.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes, keys: Overlay) -> TenantEntry:
        """Rebuild an entry written by :meth:`to_bytes`."""
        partition, offset = _HEADER.unpack_from(data)
        return cls(TenantState.from_bytes(data[_HEADER.size :], keys), partition, offset)

    @classmethod
    def from_legacy(cls, data: bytes, keys: Overlay) -> TenantEntry:
        """Convert an entry of the previous version (its keyed items go through ``keys``)."""
        partition, offset, length = _LEGACY_HEADER.unpack_from(data)
        start = _LEGACY_HEADER.size
        state = TenantState.from_bytes(data[start : start + length], keys)
        return cls(state, partition, offset)


class Overlay:
    """Changes in front of a store's values: the keys (:class:`fairuse.ledger.keyed.Keys`)
    changed since the last commit, or the writes of committed (or committing) batches not yet
    applied to the store (:meth:`StreamCore.hold`)."""

    __slots__ = ("changed", "store")

    def __init__(self, store: StateReader) -> None:
        self.store = store
        self.changed: dict[str, bytes | None] = {}

    def get(self, key: str) -> bytes | None:
        """The current value of ``key``."""
        changed = self.changed
        if key in changed:
            return changed[key]
        return self.store.get(key)

    def put(self, key: str, value: bytes | None) -> None:
        """Change ``key`` (None deletes it) until the next commit or discard."""
        self.changed[key] = value


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


class _Entries(MutableMapping[str, TenantState]):
    """The ledger's view of the core's entries: loads on a miss, notes every state set."""

    def __init__(self, core: StreamCore) -> None:
        self._core = core

    def __getitem__(self, tenant_id: str) -> TenantState:
        entry = self._core.entry(tenant_id)
        if entry is None:
            raise KeyError(tenant_id)
        return entry.state

    def __setitem__(self, tenant_id: str, state: TenantState) -> None:
        core = self._core
        entry = core.cached.get(tenant_id)
        if entry is None:
            core.cached[tenant_id] = TenantEntry(state)
        else:
            entry.state = state
        core.dirty.add(tenant_id)

    def __delitem__(self, tenant_id: str) -> None:
        raise TypeError("tenant entries are never deleted by the ledger")

    def __iter__(self) -> Iterator[str]:  # the loaded tenants only
        return iter(list(self._core.cached))

    def __len__(self) -> int:
        return len(self._core.cached)


class StreamCore:
    """The ledger over a read-only store, its changes returned by :meth:`commit`."""

    def __init__(
        self,
        policy: Policy,
        kafka: KafkaSettings,
        store: StateReader,
        *,
        cached_tenants: int = CACHED_TENANTS,
    ) -> None:
        self.kafka = kafka
        self.unapplied = Overlay(store)  # held writes, so the next batch runs during a commit
        self.store: StateReader = self.unapplied
        self.keys = Overlay(self.store)
        self.cached: dict[str, TenantEntry] = {}  # decoded entries, oldest loaded first
        self.dirty: set[str] = set()  # tenants whose entry changed since the last commit
        self.legacy: dict[str, int] = {}  # tenants converted from an old entry -> partition
        self.cached_tenants = cached_tenants
        self.ledger = Ledger(policy, _Entries(self), keys=self.keys)
        self.recent: dict[str, deque[dict[str, Any]]] = {}
        self.watermark_ms = 0
        self.skipped = 0

    @property
    def policy(self) -> Policy:
        """The policy in force (a new one applies from the next event)."""
        return self.ledger.policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        self.ledger.policy = policy

    def entry(self, tenant_id: str) -> TenantEntry | None:
        """The tenant's entry (decoded from the store if not loaded), or None if unknown."""
        entry = self.cached.get(tenant_id)
        if entry is not None:
            return entry
        raw = self.store.get(entry_key(tenant_id))
        if raw is not None:
            entry = TenantEntry.from_bytes(raw, self.keys)
        else:
            old = self.store.get(tenant_id)
            if old is None:
                return None
            entry = TenantEntry.from_legacy(old, self.keys)
            self.legacy[tenant_id] = entry.partition
            self.dirty.add(tenant_id)
        self.cached[tenant_id] = entry
        return entry

    def process(self, messages: Iterable[Inbound]) -> Batch:
        """Run the ledger over ``messages`` in order; the changes wait for :meth:`commit`."""
        batch = Batch()
        for message in messages:
            batch.events += 1
            parsed = parse_event(message.value)
            if not isinstance(parsed, Event):
                self._emit(self.ledger.process(message.value, message.source), batch)
                continue
            tenant_id = parsed.tenant_id
            entry = self.entry(tenant_id)
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
            entry = self.cached[tenant_id]
            entry.partition, entry.offset = message.partition, message.offset
            self.dirty.add(tenant_id)
            self._emit(records, batch)
        self.skipped += batch.skipped
        return batch

    def expire_idle(self, owns: Callable[[int], bool] = lambda partition: True) -> Batch:
        """Close sessions silent past their expiry at the event-time watermark.

        Only loaded tenants whose events partition ``owns`` accepts are looked at (this
        worker's); a tenant not loaded is brought up to date by its next event.
        """
        batch = Batch()
        if self.watermark_ms:
            owned = [t for t, entry in self.cached.items() if owns(entry.partition)]
            self._emit(self.ledger.expire_idle(self.watermark_ms, owned), batch)
        return batch

    def _emit(self, records: Sequence[OutputRecord], batch: Batch) -> None:
        for record in records:
            tenant = record.tenant_id
            batch.outputs.append(
                Outbound(topic_for(record, self.kafka), tenant.encode(), record.to_json())
            )
            if isinstance(record, Violation):
                recent = self.recent.get(tenant)
                if recent is None:
                    recent = self.recent[tenant] = deque(maxlen=VIOLATIONS_KEPT)
                if all(v["violation_id"] != record.violation_id for v in recent):
                    recent.append(record.to_dict())

    def partition_of(self, tenant_id: str) -> int | None:
        """The events partition of ``tenant_id`` if its entry is loaded, else None."""
        entry = self.cached.get(tenant_id)
        return None if entry is None or entry.partition < 0 else entry.partition

    def _peek(self, tenant_id: str) -> TenantEntry | None:
        """The tenant's entry for a view: loaded, or decoded apart (nothing to commit)."""
        entry = self.cached.get(tenant_id)
        if entry is not None:
            return entry
        keys = Overlay(self.store)
        raw = self.store.get(entry_key(tenant_id))
        if raw is not None:
            return TenantEntry.from_bytes(raw, keys)
        old = self.store.get(tenant_id)
        return None if old is None else TenantEntry.from_legacy(old, keys)

    def usage(self, tenant_id: str) -> dict[str, Any] | None:
        """Live usage of ``tenant_id`` at its latest event time, or None for an unknown tenant."""
        entry = self._peek(tenant_id)
        if entry is None:
            return None
        return usage_view(entry.state, self.policy, entry.state.clock_ms)

    def decision(self, tenant_id: str, metric: str) -> dict[str, Any] | None:
        """The gateway decision for ``metric`` of ``tenant_id`` at its latest event time
        (:func:`fairuse.ledger.decision.decide`), or None for an unknown tenant; ValueError for
        an unknown metric."""
        entry = self._peek(tenant_id)
        return None if entry is None else decide(entry.state, self.policy, metric)

    def violations_of(self, tenant_id: str) -> list[dict[str, Any]] | None:
        """The tenant's latest violations seen by this process (oldest first), or None for an
        unknown tenant."""
        known = tenant_id in self.cached or self.store.get(entry_key(tenant_id)) is not None
        if not known and self.store.get(tenant_id) is None:
            return None
        return list(self.recent.get(tenant_id, ()))

    def commit(self) -> list[StateWrite]:
        """Every state change since the last commit or discard, as changelog records (only keys
        whose stored value differs), and forget them. Entries come first, then their keys."""
        store, cached = self.store, self.cached
        writes: list[StateWrite] = []
        for tenant_id in sorted(self.dirty):
            entry = cached[tenant_id]
            key = entry_key(tenant_id)
            value = entry.to_bytes()
            if store.get(key) != value:
                writes.append(StateWrite(key, value, entry.partition))
        for tenant_id, partition in self.legacy.items():
            writes.append(StateWrite(tenant_id, None, partition))
        for key, value in self.keys.changed.items():
            if store.get(key) != value:
                entry = cached[tenant_of_key(key)]
                writes.append(StateWrite(key, value, entry.partition))
        self.dirty.clear()
        self.legacy.clear()
        self.keys.changed.clear()
        excess = len(cached) - self.cached_tenants
        if excess > 0:
            for tenant_id in list(cached)[:excess]:
                del cached[tenant_id]
        return writes

    def hold(self, writes: Iterable[StateWrite]) -> None:
        """Read ``writes`` (of :meth:`commit`, being committed) in front of the store until
        :meth:`release`: the next batch may be processed before they reach the store."""
        for write in writes:
            self.unapplied.put(write.key, write.value)

    def release(self, written: Iterable[tuple[str, bytes | None]]) -> None:
        """Held writes (key, value) reached the store: stop holding each, unless a later
        batch changed its key again."""
        held = self.unapplied.changed
        for key, value in written:
            if key in held and held[key] is value:
                del held[key]

    def discard(self) -> None:
        """The changes since the last commit were not made durable: forget them, the held
        writes and every decoded entry (the next batch reads the store again)."""
        self.cached.clear()
        self.dirty.clear()
        self.legacy.clear()
        self.keys.changed.clear()
        self.unapplied.changed.clear()
