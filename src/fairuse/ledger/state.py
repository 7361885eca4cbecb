"""The ledger's memory of one tenant: :class:`TenantState`, and its compact byte form.

Streaming keeps one state per tenant in a changelogged table and writes it after every event that
changes it, so the byte form is a positional orjson array (no field names) and round-trips exactly:
``TenantState.from_bytes(s.to_bytes()) == s``. Sets are kept as insertion-ordered dicts (value
``None``) so the bytes are deterministic for a given history.
"""

from __future__ import annotations

from base64 import b64decode, b64encode
from dataclasses import dataclass, field
from typing import Any

import orjson

from fairuse.ledger.dedup import HOUR_MS, id_digest

FORMAT_VERSION = 2

OPEN = 0
CLOSED = 1  # silent longer than the session expiry; a later heartbeat reopens it


@dataclass(slots=True)
class Session:
    """A started session that has not stopped yet (open, or closed by expiry)."""

    user_id: str
    metric: str  # "audio_hours" | "video_hours"
    weight: float
    start_ts: int
    start_event_id: str
    accrued_to: int  # usage is counted up to here
    last_seen: int  # time of the session's newest event
    status: int = OPEN

    def to_list(self) -> list[Any]:
        return [
            self.user_id,
            self.metric,
            self.weight,
            self.start_ts,
            self.start_event_id,
            self.accrued_to,
            self.last_seen,
            self.status,
        ]


@dataclass(slots=True)
class HeldStop:
    """A stop that arrived before its session's start, kept until the start arrives."""

    event_id: str
    ts: int
    raw: str
    source: str


@dataclass(slots=True)
class PendingNotice:
    """An enforcement notice awaiting its ``effective_at``."""

    enforcement_id: str
    effective_at: int
    action: str


@dataclass(slots=True)
class TenantState:
    """Everything the rules remember about one tenant (mutable; see module docstring).

    ``periods`` maps metric -> period -> row: ``[weighted_ms, raw_ms, limit]`` for audio/video
    hours (per month), ``[calls, limit]`` for api_calls (per day), ``[observed, limit]`` for
    stored_calls_per_user (per month); ``limit`` is the one of the period's latest check.
    """

    tenant_id: str
    clock_ms: int = 0  # newest event time seen
    seen: dict[bytes, int] = field(default_factory=dict)  # id digest -> hour (see dedup)
    seen_hours: dict[int, bytearray] = field(default_factory=dict)  # hour -> digests
    sessions: dict[str, Session] = field(default_factory=dict)
    ended: dict[str, int] = field(default_factory=dict)  # stopped session_id -> stop ts
    held_stops: dict[str, HeldStop] = field(default_factory=dict)
    users: dict[str, None] = field(default_factory=dict)  # named active users
    calls: dict[str, None] = field(default_factory=dict)  # stored call ids
    periods: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    marks: dict[str, None] = field(default_factory=dict)  # "metric|period|status" emitted
    notices: dict[str, list[Any]] = field(default_factory=dict)  # id -> [starts, ends, metrics]
    strikes: list[list[Any]] = field(default_factory=list)  # [violation_id, ts]
    pending: PendingNotice | None = None
    next_upkeep_ms: int = 0

    def to_bytes(self) -> bytes:
        """The state as a compact orjson array."""
        held = self.held_stops
        pending = self.pending
        return orjson.dumps(
            [
                FORMAT_VERSION,
                self.tenant_id,
                self.clock_ms,
                {str(hour): b64encode(bucket).decode() for hour, bucket in self.seen_hours.items()},
                {sid: s.to_list() for sid, s in self.sessions.items()},
                self.ended,
                {sid: [h.event_id, h.ts, h.raw, h.source] for sid, h in held.items()},
                list(self.users),
                list(self.calls),
                self.periods,
                list(self.marks),
                self.notices,
                self.strikes,
                None
                if pending is None
                else [pending.enforcement_id, pending.effective_at, pending.action],
                self.next_upkeep_ms,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> TenantState:
        """Rebuild a state written by :meth:`to_bytes`."""
        (
            version,
            tenant_id,
            clock_ms,
            seen_hours,
            sessions,
            ended,
            held,
            users,
            calls,
            periods,
            marks,
            notices,
            strikes,
            pending,
            next_upkeep_ms,
        ) = orjson.loads(data)
        if version == 1:  # ids kept whole with their time: convert to digests by hour
            seen_hours = _digests_by_hour(seen_hours)
        elif version != FORMAT_VERSION:
            raise ValueError(f"unsupported tenant state format {version}")
        hours = {int(hour): bytearray(b64decode(text)) for hour, text in seen_hours.items()}
        seen: dict[bytes, int] = {}
        for hour, bucket in hours.items():
            for i in range(0, len(bucket), 8):
                digest = bytes(bucket[i : i + 8])
                if seen.get(digest, -1) < hour:
                    seen[digest] = hour
        return cls(
            tenant_id=tenant_id,
            clock_ms=clock_ms,
            seen=seen,
            seen_hours=hours,
            sessions={sid: Session(*values) for sid, values in sessions.items()},
            ended=ended,
            held_stops={sid: HeldStop(*values) for sid, values in held.items()},
            users=dict.fromkeys(users),
            calls=dict.fromkeys(calls),
            periods=periods,
            marks=dict.fromkeys(marks),
            notices=notices,
            strikes=strikes,
            pending=None if pending is None else PendingNotice(*pending),
            next_upkeep_ms=next_upkeep_ms,
        )


def _digests_by_hour(seen: dict[str, int]) -> dict[str, str]:
    """Format 1's ``{event_id: ts}`` as format 2's ``{hour: base64 digests}``."""
    hours: dict[int, bytearray] = {}
    for event_id, ts in seen.items():
        hours.setdefault(ts // HOUR_MS, bytearray()).extend(id_digest(event_id))
    return {str(hour): b64encode(bucket).decode() for hour, bucket in hours.items()}
