"""Kafka messages -> table rows (the type mapping of the warehouse; pure, no I/O).

Each topic maps to one table. A message that cannot be decoded into its table's row becomes a
``dead_letters`` row (origin ``sink``) with the reason, so nothing consumed is dropped. Times
arrive as epoch milliseconds and leave as UTC datetimes for ``DateTime64(3, 'UTC')`` columns;
local days (``YYYY-MM-DD``) become dates.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

import orjson

from fairuse.events import ApiCall, Rejection, parse_event
from fairuse.records import DeadLetter, dead_letter, rejected

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": (
        "event_id", "tenant_id", "type", "ts", "session_id", "user_id", "call_id", "media",
        "api_count", "raw", "source",
    ),
    "usage": (
        "tenant_id", "metric", "day", "weighted_ms", "raw_ms", "session_id", "user_id",
        "event_id", "source",
    ),
    "violations": (
        "violation_id", "tenant_id", "metric", "period", "status", "observed", "limit", "unit",
        "seats", "user_id", "policy_revision", "ts", "source",
    ),
    "enforcement": (
        "enforcement_id", "tenant_id", "kind", "action", "ts", "effective_at", "strikes",
        "metrics", "until", "source",
    ),
    "dead_letters": (
        "dead_letter_id", "tenant_id", "event_id", "reason", "detail", "raw", "raw_encoding",
        "ts", "source", "origin",
    ),
    "notifications": (
        "notification_id", "record_id", "kind", "tenant_id", "subscription", "channel", "target",
        "attempt", "outcome", "status", "latency_ms", "error", "gave_up", "attempted_at",
        "record_ts", "published_at", "source",
    ),
    "statements": (
        "statement_id", "tenant_id", "metric", "period", "period_start", "period_end",
        "observed", "limit", "seats", "excess", "unit", "announced", "violation_ids",
        "policy_revision", "closed_at", "source",
    ),
    "adjustments": (
        "adjustment_id", "statement_id", "tenant_id", "metric", "period", "delta_observed",
        "delta_excess", "delta_announced", "caused_by", "at", "source",
    ),
}  # fmt: skip

TOPIC_TABLES: dict[str, str] = {
    "events": "events",
    "usage": "usage",
    "violations": "violations",
    "enforcement": "enforcement",
    "dead-letter": "dead_letters",
    "notifications": "notifications",
    "statements": "statements",  # kind "adjustment" goes to the adjustments table
}

Row = tuple[Any, ...]


class _Bad(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def ms_to_datetime(ms: int) -> dt.datetime:
    """Epoch milliseconds as an exact UTC datetime."""
    return EPOCH + dt.timedelta(milliseconds=ms)


def _field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in obj or obj[name] is None:
        raise _Bad("missing_field", f"missing field '{name}'")
    value = obj[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _Bad("wrong_type", f"field '{name}' has the wrong type")
    return value


def _str(obj: dict[str, Any], name: str) -> str:
    return _field(obj, name, str)


def _int(obj: dict[str, Any], name: str, lo: int = 0, hi: int = 2**63 - 1) -> int:
    value = _field(obj, name, int)
    if not lo <= value <= hi:
        raise _Bad("out_of_range", f"field '{name}' is out of range: {value}")
    return value


def _num(obj: dict[str, Any], name: str) -> float:
    return float(_field(obj, name, (int, float)))


def _time(obj: dict[str, Any], name: str) -> dt.datetime:
    return ms_to_datetime(_int(obj, name, 0, 4_102_444_800_000))


@functools.lru_cache(maxsize=4096)
def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _day(obj: dict[str, Any], name: str) -> dt.date:
    try:
        return _date(_str(obj, name))
    except ValueError as exc:
        raise _Bad("out_of_range", f"field '{name}' is not a YYYY-MM-DD day") from exc


def event_row(raw: bytes, source: str) -> tuple[str, Row]:
    """The ``events`` row of a wire event, or a ``dead_letters`` row if it breaks the contract."""
    parsed = parse_event(raw)
    if isinstance(parsed, Rejection):
        letter = rejected(raw, parsed, source=source)
        return "dead_letters", dead_letter_row(letter, origin="sink")
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    return "events", (
        parsed.event_id, parsed.tenant_id, parsed.type, ms_to_datetime(parsed.ts),
        getattr(parsed, "session_id", ""), getattr(parsed, "user_id", ""),
        getattr(parsed, "call_id", ""), getattr(parsed, "media", ""),
        parsed.count if isinstance(parsed, ApiCall) else 0, text, source,
    )  # fmt: skip


def _usage(obj: dict[str, Any], source: str) -> Row:
    return (
        _str(obj, "tenant_id"), _str(obj, "metric"), _day(obj, "day"), _num(obj, "weighted_ms"),
        _int(obj, "raw_ms"), _str(obj, "session_id"), _str(obj, "user_id"),
        _str(obj, "event_id"), source,
    )  # fmt: skip


def _violation(obj: dict[str, Any], source: str) -> Row:
    return (
        _str(obj, "violation_id"), _str(obj, "tenant_id"), _str(obj, "metric"),
        _str(obj, "period"), _str(obj, "status"), _num(obj, "observed"), _num(obj, "limit"),
        _str(obj, "unit"), _num(obj, "seats"), str(obj.get("user_id") or ""),
        str(obj.get("policy_revision", "")), _time(obj, "ts"), source,
    )  # fmt: skip


def _enforcement(obj: dict[str, Any], source: str) -> Row:
    strikes = _field(obj, "strikes", list)
    if not all(isinstance(s, str) for s in strikes):
        raise _Bad("wrong_type", "field 'strikes' must be a list of strings")
    metrics = obj.get("metrics") or []
    if not isinstance(metrics, list) or not all(isinstance(m, dict) for m in metrics):
        raise _Bad("wrong_type", "field 'metrics' must be a list of objects")
    until = None if obj.get("until") is None else _time(obj, "until")
    return (
        _str(obj, "enforcement_id"), _str(obj, "tenant_id"), _str(obj, "kind"),
        _str(obj, "action"), _time(obj, "ts"), _time(obj, "effective_at"), strikes,
        orjson.dumps(metrics).decode(), until, source,
    )  # fmt: skip


def _notification(obj: dict[str, Any], source: str) -> Row:
    gave_up = _field(obj, "gave_up", bool)
    return (
        _str(obj, "notification_id"), _str(obj, "record_id"), _str(obj, "kind"),
        _str(obj, "tenant_id"), _str(obj, "subscription"), _str(obj, "channel"),
        _str(obj, "target"), _int(obj, "attempt", 1, 2**32 - 1), _str(obj, "outcome"),
        _str(obj, "status"), _num(obj, "latency_ms"), _str(obj, "error"), gave_up,
        _time(obj, "attempted_at"), _time(obj, "record_ts"), _time(obj, "published_at"), source,
    )  # fmt: skip


def _instant(obj: dict[str, Any], name: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(_str(obj, name))
    except ValueError as exc:
        raise _Bad("out_of_range", f"field '{name}' is not an ISO instant") from exc
    if moment.tzinfo is None:
        raise _Bad("out_of_range", f"field '{name}' has no UTC offset")
    return moment.astimezone(dt.UTC)


def _statement(obj: dict[str, Any], source: str) -> Row:
    violation_ids = _field(obj, "violation_ids", list)
    if not all(isinstance(v, str) for v in violation_ids):
        raise _Bad("wrong_type", "field 'violation_ids' must be a list of strings")
    return (
        _str(obj, "statement_id"), _str(obj, "tenant_id"), _str(obj, "metric"),
        _str(obj, "period"), _instant(obj, "period_start"), _instant(obj, "period_end"),
        _num(obj, "observed"), _num(obj, "limit"), _num(obj, "seats"), _num(obj, "excess"),
        _str(obj, "unit"), _num(obj, "announced"), violation_ids, _str(obj, "policy_revision"),
        _time(obj, "closed_at"), source,
    )  # fmt: skip


def _adjustment(obj: dict[str, Any], source: str) -> Row:
    return (
        _str(obj, "adjustment_id"), _str(obj, "statement_id"), _str(obj, "tenant_id"),
        _str(obj, "metric"), _str(obj, "period"), _num(obj, "delta_observed"),
        _num(obj, "delta_excess"), _num(obj, "delta_announced"), _str(obj, "caused_by"),
        _time(obj, "at"), source,
    )  # fmt: skip


def dead_letter_row(letter: DeadLetter, origin: str) -> Row:
    """The ``dead_letters`` row of a dead letter (``origin``: ``core`` or ``sink``)."""
    ts = ms_to_datetime(letter.ts) if letter.ts is not None else None
    return (
        letter.dead_letter_id, letter.tenant_id, letter.event_id, letter.reason, letter.detail,
        letter.raw, letter.raw_encoding, ts, letter.source, origin,
    )  # fmt: skip


def _core_dead_letter(obj: dict[str, Any], source: str) -> Row:
    ts = obj.get("ts")
    if ts is not None:
        ts = ms_to_datetime(_int(obj, "ts", 0, 4_102_444_800_000))
    return (
        _str(obj, "dead_letter_id"), str(obj.get("tenant_id") or ""),
        str(obj.get("event_id") or ""), _str(obj, "reason"), str(obj.get("detail") or ""),
        _str(obj, "raw"), str(obj.get("raw_encoding") or "utf-8"), ts,
        str(obj.get("source") or source), "core",
    )  # fmt: skip


_RECORD_ROWS: dict[str, Callable[[dict[str, Any], str], Row]] = {
    "usage": _usage,
    "violations": _violation,
    "enforcement": _enforcement,
    "dead_letters": _core_dead_letter,
    "notifications": _notification,
    "statements": _statement,
    "adjustments": _adjustment,
}


def message_row(table: str, raw: bytes, source: str) -> tuple[str, Row]:
    """``(table, row)`` for one message meant for ``table``; ``dead_letters`` if undecodable."""
    if table == "events":
        return event_row(raw, source)
    obj: Any = None
    try:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _Bad("bad_json", f"bad JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise _Bad("not_an_object", f"payload is a JSON {type(obj).__name__}, not an object")
        if table == "statements" and obj.get("kind") == "adjustment":
            table = "adjustments"  # the statements topic carries both kinds
        return table, _RECORD_ROWS[table](obj, source)
    except _Bad as exc:
        tenant = obj.get("tenant_id") if isinstance(obj, dict) else ""
        letter = dead_letter(
            raw,
            exc.reason,  # type: ignore[arg-type]
            f"{table}: {exc.detail}",
            source=source,
            tenant_id=tenant if isinstance(tenant, str) else "",
        )
        return "dead_letters", dead_letter_row(letter, origin="sink")


def columns_of(rows: list[Row]) -> list[list[Any]]:
    """Rows transposed into columns (for ``insert(..., column_oriented=True)``)."""
    return [list(col) for col in zip(*rows, strict=True)]
