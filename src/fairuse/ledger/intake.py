"""Parsing for the ledger: :func:`fairuse.events.parse_event` with a fast path for heartbeats.

Heartbeats are most of the traffic (one a minute per recording session). A well-formed heartbeat
is recognised with a few direct checks; anything else (and any heartbeat failing a check) goes
through ``parse_event``, so the result is always exactly what ``parse_event`` returns (a
differential property test holds it to that).
"""

from __future__ import annotations

import orjson

from fairuse.events import (
    _TENANT_RE,
    MAX_ID_CHARS,
    MAX_PAYLOAD_BYTES,
    SCHEMA_VERSION,
    TS_MAX_MS,
    TS_MIN_MS,
    Event,
    Rejection,
    SessionHeartbeat,
    parse_event,
    parse_object,
)

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError
_tenant_ok = _TENANT_RE.fullmatch


def parse(raw: bytes | str) -> Event | Rejection:
    """Exactly :func:`fairuse.events.parse_event`, faster for well-formed heartbeats."""
    if type(raw) is not bytes or len(raw) > MAX_PAYLOAD_BYTES:
        return parse_event(raw)
    try:
        obj = _loads(raw)
    except _JSONDecodeError:
        return parse_event(raw)
    if type(obj) is not dict:
        return parse_event(raw)
    if obj.get("type") == "session_heartbeat":
        event_id = obj.get("event_id")
        tenant_id = obj.get("tenant_id")
        ts = obj.get("ts")
        session_id = obj.get("session_id")
        version = obj.get("v")
        if (
            type(event_id) is str
            and 0 < len(event_id) <= MAX_ID_CHARS
            and type(tenant_id) is str
            and _tenant_ok(tenant_id)
            and type(ts) is int
            and TS_MIN_MS <= ts < TS_MAX_MS
            and type(session_id) is str
            and 0 < len(session_id) <= MAX_ID_CHARS
            and (version is None or (type(version) is int and version == SCHEMA_VERSION))
        ):
            return SessionHeartbeat(
                event_id=event_id, tenant_id=tenant_id, ts=ts, session_id=session_id
            )
    return parse_object(obj)
