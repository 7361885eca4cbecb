"""Rule 1: sessions accrue usage as they go.

Each heartbeat and the stop add the time since the last accrual. A stop that arrives before its
start is held and applied when the start arrives. A heartbeat older than the last accrual adds
nothing; a heartbeat of an unknown (or already stopped) session is ignored.

No phantom time: a gap longer than the session expiry between two consecutive events of a
session accrues nothing. The session counts as ended at its last event before the gap; a later
heartbeat or stop does not revive it and is counted as ``late_after_expiry``. A session silent
for longer than the expiry at the tenant clock is closed (no longer listed as open); a heartbeat
that arrives late but lies within the expiry of its previous event still reopens it.
"""

from __future__ import annotations

from fairuse.events import SessionStarted
from fairuse.ledger.state import CLOSED, OPEN, HeldStop, Session, TenantState
from fairuse.ledger.weights import session_weight


def is_known(state: TenantState, session_id: str) -> bool:
    """Whether the tenant already has this session (open, closed, or stopped)."""
    return session_id in state.sessions or has_stopped(state, session_id)


def has_stopped(state: TenantState, session_id: str) -> bool:
    """Whether the session stopped within the horizon (its stop is remembered)."""
    stopped = state.ended.time_of(session_id)
    return stopped is not None and stopped >= state.ended.cutoff


def open_session(state: TenantState, event: SessionStarted, *, flat: bool = False) -> Session:
    """Start tracking the session of ``event`` (the caller checked it is new; ``flat``: audio
    counts as mono)."""
    weight = session_weight(event.media, event.channels, event.width, event.height, flat=flat)
    session = Session(
        user_id=event.user_id,
        metric="audio_hours" if event.media == "audio" else "video_hours",
        weight=weight,
        start_ts=event.ts,
        start_event_id=event.event_id,
        accrued_to=event.ts,
        last_seen=event.ts,
    )
    state.sessions[event.session_id] = session
    return session


def accrue(session: Session, until_ts: int) -> tuple[int, int] | None:
    """Advance the session to ``until_ts``; the new span ``(start, end)`` or None if none.

    The caller checked that ``until_ts`` is not late (rule 1: no phantom time).
    """
    if until_ts > session.last_seen:
        session.last_seen = until_ts
        session.status = OPEN
    start = session.accrued_to
    if until_ts <= start:
        return None
    session.accrued_to = until_ts
    return start, until_ts


def end_session(state: TenantState, session_id: str, stop_ts: int) -> None:
    """Forget the live session; remember that it stopped (for duplicate starts)."""
    state.sessions.pop(session_id, None)
    state.ended.put(session_id, stop_ts)


def hold_stop(state: TenantState, session_id: str, held: HeldStop) -> None:
    """Keep a stop that came before its start (the first such stop wins)."""
    state.held_stops.setdefault(session_id, held)


def take_held_stop(state: TenantState, session_id: str) -> HeldStop | None:
    """The held stop of ``session_id``, removed from the state, if any."""
    return state.held_stops.pop(session_id, None) if state.held_stops else None


def expire_sessions(state: TenantState, now_ms: int, expiry_ms: int) -> None:
    """Close open sessions whose newest event is older than ``now_ms - expiry_ms``."""
    cutoff = now_ms - expiry_ms
    for session in state.sessions.values():
        if session.status == OPEN and session.last_seen < cutoff:
            session.status = CLOSED


def is_open(session: Session, at_ms: int, expiry_ms: int) -> bool:
    """Whether the session counts as open at ``at_ms``."""
    return (
        session.status == OPEN
        and session.start_ts <= at_ms
        and (session.last_seen >= at_ms - expiry_ms)
    )


def note_rejected_start(state: TenantState, session_id: str, ts: int) -> HeldStop | None:
    """Remember that the start of ``session_id`` was dead-lettered (its heartbeats and stop are
    dead-lettered ``rejected_session``); the stop held for it, if any, removed."""
    if session_id in state.sessions:
        return None
    state.rejected[session_id] = ts
    return take_held_stop(state, session_id)


def prune_sessions(state: TenantState, cutoff_ms: int) -> None:
    """Forget sessions (stopped, or silent), held stops and rejected starts older than
    ``cutoff_ms``."""
    if state.rejected:
        state.rejected = {sid: ts for sid, ts in state.rejected.items() if ts >= cutoff_ms}
    state.ended.prune(cutoff_ms)
    stale = [sid for sid, s in state.sessions.items() if s.last_seen < cutoff_ms]
    for sid in stale:
        del state.sessions[sid]
    stale = [sid for sid, h in state.held_stops.items() if h.ts < cutoff_ms]
    for sid in stale:
        del state.held_stops[sid]
