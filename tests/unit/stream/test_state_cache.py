"""StateCache: decoded values over a byte store, flushed once per batch."""

from __future__ import annotations

import pytest

from fairuse.stream.state import StateCache


def cache(store: dict[str, bytes]) -> StateCache[list[int]]:
    return StateCache(store, lambda b: [int(x) for x in b.split(b",") if x], _encode)


def _encode(value: list[int]) -> bytes:
    return ",".join(map(str, value)).encode()


def test_reads_decode_once_and_changes_are_only_changed_values() -> None:
    store = {"a": b"1,2", "b": b"3"}
    states = cache(store)
    states["a"].append(9)
    assert states["b"] == [3]
    states["c"] = [7]
    changes = states.changes()
    assert changes == [("a", b"1,2,9"), ("c", b"7")]
    assert store == {"a": b"1,2", "b": b"3"}  # the caller applies them once durable
    store.update(changes)
    assert states.changes() == []


def test_missing_key_raises_and_iteration_covers_store_and_new_keys() -> None:
    states = cache({"a": b"1"})
    with pytest.raises(KeyError):
        states["zz"]
    assert states.get("zz") is None
    states["n"] = []
    assert sorted(states) == ["a", "n"]
    assert len(states) == 2
    assert "a" in states and "zz" not in states


def test_discarded_cache_reloads_from_the_store() -> None:
    store = {"a": b"1"}
    states = cache(store)
    assert states["a"] == [1]
    store["a"] = b"5"  # recovered from the changelog after a rebalance
    assert states["a"] == [1]
    states.discard()
    assert states["a"] == [5]
    assert states.peek("a") == [5] and states.peek("zz") is None


def test_delete_removes_from_store() -> None:
    store = {"a": b"1"}
    states = cache(store)
    del states["a"]
    assert store == {}
    with pytest.raises(KeyError):
        del states["a"]
