"""Duplicate event ids: a repeated ``event_id`` of a tenant is dropped and counted.

An id counts as a duplicate while the event that first carried it lies within the horizon of the
tenant's newest event time; :func:`prune_seen` forgets older ids (only an optimisation: the check
itself already ignores them).
"""

from __future__ import annotations

from fairuse.ledger.state import TenantState

DEFAULT_HORIZON_MS = 7 * 86_400_000


def is_duplicate(state: TenantState, event_id: str, horizon_ms: int) -> bool:
    """Whether ``event_id`` was already seen within the horizon."""
    first_ts = state.seen.get(event_id)
    return first_ts is not None and first_ts >= state.clock_ms - horizon_ms


def remember(state: TenantState, event_id: str, ts: int) -> None:
    """Record ``event_id`` as seen at ``ts``."""
    state.seen[event_id] = ts


def prune_seen(state: TenantState, cutoff_ms: int) -> None:
    """Forget the oldest remembered ids first seen before ``cutoff_ms``.

    Ids are kept in arrival order; pruning stops at the first id still inside the horizon, so it
    costs only what it removes. An id that arrived late with an old time is forgotten a little
    later, which the check above makes harmless.
    """
    seen = state.seen
    stale = []
    for event_id, ts in seen.items():
        if ts >= cutoff_ms:
            break
        stale.append(event_id)
    for event_id in stale:
        del seen[event_id]
