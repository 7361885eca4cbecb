"""Keyed state: the part of a tenant's memory that grows with its history, one key per item.

A tenant's small, bounded entry (:class:`fairuse.ledger.state.TenantState`) lives under one key;
collections that grow with history (stored call ids, remembered event ids, stopped sessions) keep
one key per item, so a change writes only the keys it touches and state larger than memory can
sit in an on-disk store. Every key of a tenant starts with the tenant id and ``/`` (tenant ids
never contain ``/``); see docs/ledger-rules.md, "State", for the layout.

:class:`Keys` is what the rules read and write through: ``get`` and ``put`` (``None`` deletes).
:class:`DictKeys` is the plain-dict version (``fairuse replay``, tests); the worker puts an
overlay in front of its store (``fairuse.stream.core``).
"""

from __future__ import annotations

import struct
from collections.abc import MutableMapping
from typing import Protocol

import orjson

SEP = "/"
HOUR_MS = 3_600_000
TIME_BYTES = struct.Struct(">q")  # a kept time: 8 bytes, big-endian ms
PRESENT = b"\x01"


class Keys(Protocol):
    """Read and write access to keyed state."""

    def get(self, key: str) -> bytes | None:
        """The value of ``key``, or None if absent."""

    def put(self, key: str, value: bytes | None) -> None:
        """Set ``key`` to ``value``; ``None`` deletes it."""


class DictKeys:
    """:class:`Keys` over a plain mapping (the whole keyed state in memory)."""

    __slots__ = ("data", "get")

    def __init__(self, data: MutableMapping[str, bytes] | None = None) -> None:
        self.data: MutableMapping[str, bytes] = {} if data is None else data
        self.get = self.data.get

    def put(self, key: str, value: bytes | None) -> None:
        """Set or delete ``key``."""
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value


def tenant_key(tenant_id: str, kind: str) -> str:
    """The prefix of a tenant's keys of one kind: ``{tenant}/{kind}/``."""
    return f"{tenant_id}{SEP}{kind}{SEP}"


class KeyedSet:
    """A set of ids of one tenant, one key per id (``{tenant}/{kind}/{id}``), with its size.

    Only the size lives in the tenant entry; membership is a key lookup.
    """

    __slots__ = ("count", "keys", "prefix")

    def __init__(self, keys: Keys, prefix: str, count: int = 0) -> None:
        self.keys = keys
        self.prefix = prefix
        self.count = count

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeyedSet) and (self.prefix, self.count) == (
            other.prefix,
            other.count,
        )

    def __repr__(self) -> str:
        return f"KeyedSet({self.prefix!r}, count={self.count})"

    def __len__(self) -> int:
        return self.count

    def __contains__(self, item: str) -> bool:
        return self.keys.get(self.prefix + item) is not None

    def add(self, item: str) -> bool:
        """Add ``item``; False if it was already there."""
        key = self.prefix + item
        if self.keys.get(key) is not None:
            return False
        self.keys.put(key, PRESENT)
        self.count += 1
        return True

    def remove(self, item: str) -> bool:
        """Remove ``item``; False if it was not there (then nothing changes)."""
        key = self.prefix + item
        if self.keys.get(key) is None:
            return False
        self.keys.put(key, None)
        self.count -= 1
        return True


class ExpiringTimes:
    """Ids of one tenant with a time each, forgotten by the hour once a cutoff passes them.

    ``{tenant}/{kind}/{id}`` holds the id's time (8 bytes, big-endian ms). An index lists the ids
    put in each event-time hour: ids listed since the last :meth:`seal` wait in :attr:`open`;
    sealing writes each hour's waiting ids as one record, ``{tenant}/{kind}h/{hour}/{n}`` -> an
    orjson list of ids (the worker seals once per batch, when it writes the entry, so a batch
    adds one index record per tenant and hour, not one per id). The entry keeps only ``hours``
    (hour -> index records) and the last ``cutoff``. :meth:`prune` deletes the keys of every hour
    that ended at or before the cutoff (tombstones), so the keys held are those of the last
    horizon (plus at most an hour and a pruning interval) and never more.
    """

    __slots__ = ("cutoff", "hours", "index", "keys", "open", "prefix")

    def __init__(
        self,
        keys: Keys,
        tenant_id: str,
        kind: str,
        hours: dict[int, int] | None = None,
        cutoff: int = -(2**63),
    ) -> None:
        self.keys = keys
        self.prefix = tenant_key(tenant_id, kind)
        self.index = tenant_key(tenant_id, kind + "h")
        self.hours: dict[int, int] = {} if hours is None else hours
        self.cutoff = cutoff
        self.open: dict[int, list[str]] = {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExpiringTimes) and (
            self.prefix,
            self.hours,
            self.cutoff,
            self.open,
        ) == (other.prefix, other.hours, other.cutoff, other.open)

    def __repr__(self) -> str:
        return f"ExpiringTimes({self.prefix!r}, hours={self.hours}, cutoff={self.cutoff})"

    def time_of(self, item: str) -> int | None:
        """The time kept for ``item``, or None (never put, or pruned)."""
        raw = self.keys.get(self.prefix + item)
        return None if raw is None else TIME_BYTES.unpack(raw)[0]

    def put(self, item: str, ts: int, *, index_ts: int | None = None) -> None:
        """Keep ``ts`` for ``item``, listed under the hour of ``index_ts`` (default ``ts``)."""
        self.keys.put(self.prefix + item, TIME_BYTES.pack(ts))
        self.list_under((ts if index_ts is None else index_ts) // HOUR_MS, item)

    def list_under(self, hour: int, item: str) -> None:
        """Add ``item`` to the index of ``hour`` (deleted when the hour is pruned)."""
        self.open.setdefault(hour, []).append(item)

    def seal(self) -> None:
        """Write the ids listed since the last seal: one index record per hour."""
        for hour, items in self.open.items():
            n = self.hours.get(hour, 0)
            self.keys.put(f"{self.index}{hour}{SEP}{n}", orjson.dumps(items))
            self.hours[hour] = n + 1
        self.open.clear()

    def prune(self, cutoff_ms: int) -> None:
        """Forget the ids listed under hours that ended at or before ``cutoff_ms``; an id whose
        time lies in a later hour (put again since) is kept."""
        self.seal()
        self.cutoff = max(self.cutoff, cutoff_ms)
        keys = self.keys
        for hour in [h for h in self.hours if (h + 1) * HOUR_MS <= cutoff_ms]:
            for n in range(self.hours.pop(hour)):
                index_key = f"{self.index}{hour}{SEP}{n}"
                raw = keys.get(index_key)
                keys.put(index_key, None)
                for item in () if raw is None else orjson.loads(raw):
                    key = self.prefix + item
                    kept = keys.get(key)
                    if kept is not None and TIME_BYTES.unpack(kept)[0] // HOUR_MS <= hour:
                        keys.put(key, None)
