"""Table recovery in whole fetches: the tables' changelogs applied a fetch at a time.

Faust's recovery (``faust.tables.recovery.Recovery``) gets each changelog record through the
consumer's per-message hand-over (a ``Message``, an event, two tasks and a queue put per
record) and then, per record, bookkeeping over every partition it recovers; on a loaded 2-core
machine that applied a few hundred records/s, so a worker without its local store took minutes
per 10,000 tenants. The worker's transport (``stream/transport.py``) hands each fetch of a
changelog topic whole to :meth:`ChangelogApplier.apply` instead, which applies it to the
table's store with one ``apply_changelog_batch`` per partition (the same store method Faust's
recovery calls for its buffers) and advances Faust's own recovery offsets, so Faust still
decides what to recover (actives, standbys, the offsets to start from, seeks), when recovery
is done, and when streams resume. Records of a partition Faust does not recover (revoked, or
not assigned) are dropped, as Faust does.

With ``processing_guarantee="exactly_once"`` a changelog ends with a transaction marker that
no fetch returns; Faust notices it only after an empty 5 s poll. The applier checks after each
fetch whether the consumer is past such a marker, marks the partition done at once (the check
Faust makes then) and ends the recovery if nothing else remains.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from faust.types import TP

FINISH_POLL_S = 0.2
"""How often the end of a recovery is checked between fetches."""


@dataclass(frozen=True, slots=True)
class ChangelogMessage:
    """What the stores read of a changelog record's ``event.message``."""

    tp: TP
    partition: int
    offset: int
    key: bytes
    value: bytes | None


@dataclass(frozen=True, slots=True)
class ChangelogEvent:
    """A changelog record as the stores apply it: the decoded key (a table's ``str`` keys are
    JSON on the changelog), the raw value (the tables' values are raw bytes), the message."""

    key: str
    value: bytes | None
    message: ChangelogMessage


def changelog_events(tp: TP, records: Sequence[Any], after: int | None) -> list[ChangelogEvent]:
    """``records`` (aiokafka ``ConsumerRecord``s of ``tp``) past offset ``after``."""
    loads = orjson.loads
    return [
        ChangelogEvent(
            loads(r.key), r.value, ChangelogMessage(tp, tp.partition, r.offset, r.key, r.value)
        )
        for r in records
        if after is None or r.offset > after
    ]


class ChangelogApplier:
    """The bulk handler of the tables' changelog topics (``Transport.bulk``)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.applied = 0  # records applied, for logs and tests
        self._finisher: asyncio.Future[None] | None = None

    async def apply(self, fetched: Mapping[TP, Sequence[Any]]) -> None:
        """Apply one fetch of changelog records to the tables' stores."""
        recovery = self.app.tables.recovery
        now = time.monotonic()
        for tp, records in fetched.items():
            if tp in recovery.active_tps:
                offsets = recovery.active_offsets
                recovery._active_events_received_at[tp] = now
            elif tp in recovery.standby_tps:
                offsets = recovery.standby_offsets
                recovery._standby_events_received_at[tp] = now
            else:
                continue  # not (or no longer) recovered here: Faust drops these too
            events = changelog_events(tp, records, offsets.get(tp))
            if not events:
                continue
            recovery.tp_to_table[tp].apply_changelog_batch(events)
            offsets[tp] = events[-1].message.offset
            self.applied += len(events)
        recovery._last_flush_at = now
        await self._settle(recovery)
        if recovery.in_recovery and (self._finisher is None or self._finisher.done()):
            self._finisher = asyncio.ensure_future(self._finish(recovery))

    async def _finish(self, recovery: Any) -> None:
        """Until the recovery ends: the last partitions' markers arrive in fetches without
        records, which never reach :meth:`apply`."""
        while recovery.in_recovery and not self.app.should_stop:
            await asyncio.sleep(FINISH_POLL_S)
            await self._settle(recovery)

    async def _settle(self, recovery: Any) -> None:
        """End the recovery if nothing remains; tell Faust when the standbys are up to date."""
        if recovery.in_recovery:
            await self._past_markers(recovery)
        if recovery.in_recovery and not recovery.need_recovery():
            recovery.flush_buffers()  # empty unless a record went Faust's way
            recovery._set_recovery_ended()
            recovery.signal_recovery_end.set()
        tables = self.app.tables
        if not tables.standbys_ready and not recovery.standby_remaining_total():
            tables.on_standbys_ready()

    async def _past_markers(self, recovery: Any) -> None:
        """Mark active partitions whose consumer position is past the highwater (Faust's: the
        last offset) as done: what was not applied below it is a transaction marker or aborted
        records, which ``read_committed`` fetches never return. Checked for the partitions one
        record short of the highwater (the usual end: the last transaction's marker), in
        every fetch, as a partition's marker may come in a later fetch than its last record;
        others (aborted records at the end) are left to Faust's check after its empty polls."""
        for tp, highwater in list(recovery.active_highwaters.items()):
            offset = recovery.active_offsets.get(tp)
            if highwater is None or offset is None or offset != highwater - 1:
                continue
            position = await self.app.consumer.position(tp)
            if (
                position is not None
                and position > highwater
                and tp in recovery.active_tps
                and recovery.active_offsets.get(tp) == offset
            ):
                recovery.active_offsets[tp] = highwater
