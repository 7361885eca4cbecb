"""Duplicate event ids: a repeated ``event_id`` of a tenant is dropped and counted.

Ids are remembered as 8-byte blake2b digests, grouped by the hour of the event that first carried
them (compact state: 8 bytes per event instead of the id and its time). An id counts as a
duplicate while that hour is not entirely older than the horizon before the tenant's newest event
time, so ids are remembered for at least the horizon and at most one hour more. Two different ids
of one tenant share a digest with a probability of about n^2 / 2^65 (n ids in the horizon: ~1e-10
for 50,000 ids), in which case the later event would be dropped as a duplicate.
"""

from __future__ import annotations

import hashlib

from fairuse.ledger.state import TenantState

DEFAULT_HORIZON_MS = 7 * 86_400_000
HOUR_MS = 3_600_000
_blake2b = hashlib.blake2b


def id_digest(event_id: str) -> bytes:
    """The 8-byte digest under which an event id is remembered."""
    return _blake2b(event_id.encode(), digest_size=8).digest()


def is_duplicate(state: TenantState, digest: bytes, horizon_ms: int) -> bool:
    """Whether the id with ``digest`` was already seen within the horizon."""
    hour = state.seen.get(digest)
    return hour is not None and (hour + 1) * HOUR_MS > state.clock_ms - horizon_ms


def remember(state: TenantState, digest: bytes, ts: int) -> None:
    """Record the id with ``digest`` as first seen at ``ts``."""
    hour = ts // HOUR_MS
    state.seen[digest] = hour
    bucket = state.seen_hours.get(hour)
    if bucket is None:
        state.seen_hours[hour] = bytearray(digest)
    else:
        bucket += digest


def prune_seen(state: TenantState, cutoff_ms: int) -> None:
    """Forget ids whose hour ended at or before ``cutoff_ms``."""
    seen = state.seen
    for hour in [h for h in state.seen_hours if (h + 1) * HOUR_MS <= cutoff_ms]:
        bucket = state.seen_hours.pop(hour)
        for i in range(0, len(bucket), 8):
            digest = bytes(bucket[i : i + 8])
            if seen.get(digest) == hour:
                del seen[digest]
