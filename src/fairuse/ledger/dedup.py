"""Duplicate event ids: a repeated ``event_id`` of a tenant is dropped and counted.

Exact: every id is kept whole, one key per id (``{tenant}/i/{event_id}`` -> the time of the event
that first carried it), listed by that event's hour for expiry (see
:class:`~fairuse.ledger.keyed.ExpiringTimes`). An id counts as a duplicate while its hour is not
entirely older than the horizon before the tenant's newest event time, so ids are remembered for
at least the horizon and at most one hour more (plus the hour between two prunings). Distinct
ids are never confused.

States written by the previous version kept 8-byte digests of the ids in the tenant entry; they
are read, kept read-only in :attr:`SeenIds.legacy` and consulted until their hours pass the
horizon (at most 8 days after the upgrade), after which dedup is exact for every id.
"""

from __future__ import annotations

import hashlib

from fairuse.ledger.keyed import HOUR_MS, TIME_BYTES, ExpiringTimes, Keys

DEFAULT_HORIZON_MS = 7 * 86_400_000


def id_digest(event_id: str) -> bytes:
    """The 8-byte digest under which the previous version remembered an event id."""
    return hashlib.blake2b(event_id.encode(), digest_size=8).digest()


class SeenIds(ExpiringTimes):
    """The event ids of one tenant within the dedup horizon."""

    __slots__ = ("legacy",)

    def __init__(
        self,
        keys: Keys,
        tenant_id: str,
        hours: dict[int, int] | None = None,
        cutoff: int = -(2**63),
        legacy: dict[bytes, int] | None = None,
    ) -> None:
        super().__init__(keys, tenant_id, "i", hours, cutoff)
        self.legacy: dict[bytes, int] = {} if legacy is None else legacy  # digest -> hour

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SeenIds) and super().__eq__(other) and self.legacy == other.legacy

    def check_and_remember(self, event_id: str, ts: int, clock_ms: int, horizon_ms: int) -> bool:
        """True if ``event_id`` is a duplicate; else remember it as first seen at ``ts``."""
        horizon_start = clock_ms - horizon_ms
        key = self.prefix + event_id  # read once and, for a new id, written once
        raw = self.keys.get(key)
        kept = None if raw is None else TIME_BYTES.unpack(raw)[0]
        if kept is not None and (kept // HOUR_MS + 1) * HOUR_MS > horizon_start:
            return True
        if self.legacy:
            hour = self.legacy.get(id_digest(event_id))
            if hour is not None and (hour + 1) * HOUR_MS > horizon_start:
                return True
        hour = ts // HOUR_MS
        if kept is None or hour > kept // HOUR_MS:
            self.keys.put(key, TIME_BYTES.pack(ts))
        # else an expired id seen again with an older time: keep the later one, list this one
        self.list_under(hour, event_id)
        return False

    def prune(self, cutoff_ms: int) -> None:
        """Forget ids (and legacy digests) whose hour ended at or before ``cutoff_ms``."""
        super().prune(cutoff_ms)
        if self.legacy:
            self.legacy = {d: h for d, h in self.legacy.items() if (h + 1) * HOUR_MS > cutoff_ms}
