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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fairuse.ledger.state import TenantState

DEFAULT_HORIZON_MS = 7 * 86_400_000
HOUR_MS = 3_600_000
_blake2b = hashlib.blake2b


def id_digest(event_id: str) -> bytes:
    """The 8-byte digest under which an event id is remembered."""
    return _blake2b(event_id.encode(), digest_size=8).digest()


def check_and_remember(state: TenantState, event_id: str, ts: int, horizon_ms: int) -> bool:
    """True if ``event_id`` is a duplicate; else remember it as first seen at ``ts``."""
    digest = _blake2b(event_id.encode(), digest_size=8).digest()
    seen = state.seen
    hour = seen.get(digest)
    if hour is not None and (hour + 1) * HOUR_MS > state.clock_ms - horizon_ms:
        return True
    first_hour = ts // HOUR_MS
    if hour is None or first_hour > hour:  # the index keeps an id's latest hour
        seen[digest] = first_hour
    hour = first_hour
    bucket = state.seen_hours.get(hour)
    if bucket is None:
        state.seen_hours[hour] = bytearray(digest)
    else:
        bucket += digest
    return False


def prune_seen(state: TenantState, cutoff_ms: int) -> None:
    """Forget ids whose hour ended at or before ``cutoff_ms``."""
    seen = state.seen
    for hour in [h for h in state.seen_hours if (h + 1) * HOUR_MS <= cutoff_ms]:
        bucket = state.seen_hours.pop(hour)
        for i in range(0, len(bucket), 8):
            digest = bytes(bucket[i : i + 8])
            if seen.get(digest) == hour:
                del seen[digest]
