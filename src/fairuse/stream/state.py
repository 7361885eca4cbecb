"""Decoded per-tenant state in front of a byte store (a Faust table), written once per batch.

The ledger mutates :class:`TenantState` objects in place, so every key the ledger reads during a
batch counts as touched; :meth:`StateCache.changes` encodes the touched states and returns those
whose bytes changed. :meth:`StateCache.discard` (a failed batch, a rebalance) empties it, so a
tenant is read again from the (recovered) store.
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

    def changes(self) -> list[tuple[str, bytes]]:
        """Every touched state whose encoding differs from the backing store's, as
        ``(key, bytes)``; forgets the touched set. Nothing is written: the caller makes the
        changes durable, then applies them to the backing store."""
        found = []
        for key in sorted(self._touched):
            state = self._live.get(key)
            if state is None:
                continue
            raw = self._encode(state)
            if self._backing.get(key) != raw:
                found.append((key, raw))
        self._touched.clear()
        return found

    def discard(self) -> None:
        """Forget every decoded and touched state: the next read loads from the store."""
        self._live.clear()
        self._touched.clear()
