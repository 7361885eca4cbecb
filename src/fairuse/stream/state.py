"""Decoded per-tenant state in front of a byte store (a Faust table), written once per batch.

The ledger mutates :class:`TenantState` objects in place, so every key the ledger reads during a
batch counts as touched; :meth:`StateCache.flush` encodes the touched states and writes only those
whose bytes changed. A rebalance marks the cache stale: it is emptied at the next batch, so a
tenant that moved away and back is read again from the (recovered) table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Generic, TypeVar

S = TypeVar("S")


class StateCache(MutableMapping[str, S], Generic[S]):
    """A ``MutableMapping[str, S]`` loading from and flushing to ``backing`` (``str -> bytes``)."""

    def __init__(
        self,
        backing: MutableMapping[str, bytes],
        decode: Callable[[bytes], S],
        encode: Callable[[S], bytes],
    ) -> None:
        self._backing = backing
        self._decode = decode
        self._encode = encode
        self._live: dict[str, S] = {}
        self._touched: set[str] = set()
        self._stale = False

    def __getitem__(self, key: str) -> S:
        state = self._live.get(key)
        if state is None:
            raw = self._backing.get(key)
            if raw is None:
                raise KeyError(key)
            state = self._live[key] = self._decode(raw)
        self._touched.add(key)
        return state

    def __setitem__(self, key: str, value: S) -> None:
        self._live[key] = value
        self._touched.add(key)

    def __delitem__(self, key: str) -> None:
        present = self._live.pop(key, None) is not None
        if key in self._backing:
            del self._backing[key]
            present = True
        self._touched.discard(key)
        if not present:
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        yield from self._live
        for key in list(self._backing.keys()):
            if key not in self._live:
                yield key

    def __len__(self) -> int:
        return len(self._live.keys() | set(self._backing.keys()))

    def __contains__(self, key: object) -> bool:
        return key in self._live or key in self._backing

    def peek(self, key: str) -> S | None:
        """The decoded value of ``key`` if loaded, without loading or touching it."""
        return self._live.get(key)

    @property
    def touched(self) -> frozenset[str]:
        """Keys read or written since the last flush."""
        return frozenset(self._touched)

    def flush(self) -> list[str]:
        """Write every touched state whose encoding changed; return the keys written."""
        written = []
        for key in sorted(self._touched):
            state = self._live.get(key)
            if state is None:
                continue
            raw = self._encode(state)
            if self._backing.get(key) != raw:
                self._backing[key] = raw
                written.append(key)
        self._touched.clear()
        return written

    def mark_stale(self) -> None:
        """Forget decoded states at the next :meth:`begin` (partitions were reassigned)."""
        self._stale = True

    def begin(self) -> None:
        """Start a batch: drop decoded states if a rebalance happened since the last batch."""
        if self._stale:
            self._live.clear()
            self._touched.clear()
            self._stale = False
