"""ChangelogApplier: whole changelog fetches applied to the tables and Faust's recovery offsets
advanced, records already applied or of partitions not recovered here dropped, the recovery
ended once nothing remains (the transaction marker included)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from faust.types import TP

from fairuse.stream.recovery import ChangelogApplier

ACTIVE, STANDBY, GONE = TP("cl", 0), TP("cl", 1), TP("cl", 2)


@dataclass(frozen=True)
class Record:
    """The fields of an aiokafka ConsumerRecord the applier reads."""

    offset: int
    key: bytes
    value: bytes | None


def records(*items: tuple[int, str, bytes | None]) -> list[Record]:
    return [Record(offset, orjson.dumps(key), value) for offset, key, value in items]


@dataclass
class Table:
    """A memory store's semantics: a tombstone deletes the key."""

    data: dict[str, bytes] = field(default_factory=dict)
    batches: int = 0

    def apply_changelog_batch(self, batch: Any) -> None:
        self.batches += 1
        for event in batch:
            assert event.message.key == orjson.dumps(event.key)
            if event.message.value is None:
                self.data.pop(event.key, None)
            else:
                self.data[event.key] = event.value


class Recovery:
    """What the applier uses of Faust's ``Recovery``."""

    def __init__(self, table: Table, active_highwater: int) -> None:
        self.active_tps, self.standby_tps = {ACTIVE}, {STANDBY}
        self.tp_to_table = {ACTIVE: table, STANDBY: table, GONE: table}
        self.active_offsets: Counter[TP] = Counter({ACTIVE: -1})
        self.standby_offsets: Counter[TP] = Counter({STANDBY: -1})
        self.active_highwaters: Counter[TP] = Counter({ACTIVE: active_highwater})
        self.standby_highwaters: Counter[TP] = Counter({STANDBY: 0})
        self._active_events_received_at: dict[TP, float] = {}
        self._standby_events_received_at: dict[TP, float] = {}
        self._last_flush_at: float | None = None
        self.in_recovery = True
        self.signal_recovery_end = asyncio.Event()
        self.flushed = 0

    def need_recovery(self) -> bool:
        return any(
            self.active_highwaters[tp] - self.active_offsets[tp] > 0 for tp in self.active_tps
        )

    def standby_remaining_total(self) -> int:
        return sum(
            self.standby_highwaters[tp] - self.standby_offsets[tp] for tp in self.standby_tps
        )

    def flush_buffers(self) -> None:
        self.flushed += 1

    def _set_recovery_ended(self) -> None:
        self.in_recovery = False


class App:
    def __init__(self, recovery: Recovery, position: int) -> None:
        self.tables = type("Tables", (), {})()
        self.tables.recovery = recovery
        self.tables.standbys_ready = False
        self.tables.on_standbys_ready = lambda: setattr(self.tables, "standbys_ready", True)
        self.consumer = self
        self.should_stop = False
        self._position = position

    async def position(self, tp: TP) -> int:
        return self._position


def test_a_fetch_is_applied_in_one_batch_and_only_records_past_the_recovered_offset() -> None:
    table = Table()
    recovery = Recovery(table, active_highwater=10)
    applier = ChangelogApplier(App(recovery, position=4))
    first = records((0, "a", b"1"), (1, "b", b"2"), (2, "a", b"3"))
    asyncio.run(applier.apply({ACTIVE: first}))
    assert table.data == {"a": b"3", "b": b"2"}
    assert (table.batches, recovery.active_offsets[ACTIVE]) == (1, 2)
    # Faust seeks back to the last applied offset: that record is not applied twice
    again = records((2, "a", b"3"), (3, "b", None))
    asyncio.run(applier.apply({ACTIVE: again}))
    assert table.data == {"a": b"3"}
    assert (applier.applied, recovery.active_offsets[ACTIVE]) == (4, 3)
    assert recovery.in_recovery and not recovery.signal_recovery_end.is_set()


def test_partitions_not_recovered_here_are_dropped() -> None:
    table = Table()
    recovery = Recovery(table, active_highwater=10)
    asyncio.run(ChangelogApplier(App(recovery, position=0)).apply({GONE: records((0, "x", b"1"))}))
    assert table.data == {} and table.batches == 0


def test_recovery_ends_once_the_consumer_is_past_the_transaction_marker() -> None:
    """The last data record is at 8, the marker at 9 (the highwater: Faust's last offset). The
    marker may come in a later fetch without records, which the applier's check between
    fetches sees."""

    async def run() -> None:
        table = Table()
        recovery = Recovery(table, active_highwater=9)
        app = App(recovery, position=9)
        fetch = {ACTIVE: records((8, "a", b"1")), STANDBY: records((0, "s", b"2"))}
        await ChangelogApplier(app).apply(fetch)
        assert recovery.active_offsets[ACTIVE] == 8  # the marker is still ahead
        assert recovery.in_recovery and not recovery.flushed
        assert app.tables.standbys_ready  # the standby reached its highwater
        app._position = 10  # the consumer fetched the marker
        await asyncio.wait_for(recovery.signal_recovery_end.wait(), 30)
        assert recovery.active_offsets[ACTIVE] == 9
        assert (recovery.in_recovery, recovery.flushed) == (False, 1)

    asyncio.run(run())
