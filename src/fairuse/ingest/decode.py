"""Request bodies of ``POST /v1/events`` -> wire payloads, each validated by ``parse_event``.

Pure functions, no I/O. Content types:

- ``application/json``: one event object, or a JSON array of them;
- ``application/x-ndjson`` (also ``application/ndjson``): one event per line;
- ``application/cloudevents+json``: one CloudEvent (structured mode);
- ``application/cloudevents-batch+json``: a JSON array of CloudEvents.

A CloudEvent maps to the contract as ``id`` -> ``event_id``, ``subject`` -> ``tenant_id``,
``time`` (RFC 3339) -> ``ts`` (epoch ms), ``type`` ``fairuse.<type>`` -> ``type``, and ``data``
(a JSON object) holds the type's fields (docs/event-contract.md, "CloudEvents").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from fairuse.events import Event, Rejection, RejectionReason, parse_event

JSON = "application/json"
NDJSON = ("application/x-ndjson", "application/ndjson")
CLOUDEVENT = "application/cloudevents+json"
CLOUDEVENT_BATCH = "application/cloudevents-batch+json"
CONTENT_TYPES = (JSON, *NDJSON, CLOUDEVENT, CLOUDEVENT_BATCH)
CLOUDEVENTS_TYPE_PREFIX = "fairuse."
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class BadBody(ValueError):
    """The body as a whole cannot be read (not per event): ``reason`` is a contract reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Item:
    """One event of a request: its wire payload and what ``parse_event`` made of it."""

    payload: bytes
    parsed: Event | Rejection


def items(body: bytes, content_type: str) -> list[Item]:
    """The events of ``body``, in order; raise BadBody if the body is not of ``content_type``."""
    if content_type in NDJSON:
        return [_item(line) for line in body.splitlines() if line.strip()]
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadBody("bad_json", f"bad JSON: {exc}") from exc
    if content_type == JSON:
        if isinstance(document, list):
            return [_item(orjson.dumps(element)) for element in document]
        return [_item(body)]
    if content_type == CLOUDEVENT:
        return [_cloudevent_item(document)]
    if not isinstance(document, list):
        raise BadBody("not_an_object", "a CloudEvents batch must be a JSON array")
    return [_cloudevent_item(element) for element in document]


def _item(payload: bytes) -> Item:
    return Item(payload, parse_event(payload))


def _cloudevent_item(ce: Any) -> Item:
    converted = from_cloudevent(ce)
    if isinstance(converted, Rejection):
        return Item(orjson.dumps(ce), converted)
    return _item(orjson.dumps(converted))


def from_cloudevent(ce: Any) -> dict[str, Any] | Rejection:
    """A CloudEvents 1.0 JSON object -> the contract's event object (validated afterwards)."""
    if not isinstance(ce, dict):
        kind = type(ce).__name__
        return Rejection("not_an_object", f"CloudEvent is a JSON {kind}, not an object")
    for name in ("specversion", "id", "source", "type", "subject", "time"):
        if ce.get(name) is None:
            return _reject(ce, "missing_field", f"missing CloudEvents attribute '{name}'")
    if ce["specversion"] != "1.0":
        return _reject(
            ce, "unsupported_version", f"CloudEvents specversion {ce['specversion']!r} is not 1.0"
        )
    kind = ce["type"]
    if not isinstance(kind, str) or not kind.startswith(CLOUDEVENTS_TYPE_PREFIX):
        return _reject(
            ce, "unknown_type", f"CloudEvents type must be 'fairuse.<event type>', got {kind!r:.80}"
        )
    ts = _epoch_ms(ce["time"])
    if ts is None:
        return _reject(ce, "wrong_type", "CloudEvents 'time' must be an RFC 3339 timestamp")
    content_type = ce.get("datacontenttype")
    if content_type is not None and content_type.split(";")[0].strip() != JSON:
        return _reject(ce, "wrong_type", f"CloudEvents datacontenttype must be {JSON}")
    data = ce.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return _reject(ce, "wrong_type", "CloudEvents 'data' must be a JSON object")
    return {
        **data,
        "type": kind.removeprefix(CLOUDEVENTS_TYPE_PREFIX),
        "event_id": ce["id"],
        "tenant_id": ce["subject"],
        "ts": ts,
    }


def _reject(ce: dict[str, Any], reason: RejectionReason, detail: str) -> Rejection:
    """A rejection carrying the CloudEvent's subject and id where they are plain strings."""
    subject, event_id = ce.get("subject"), ce.get("id")
    return Rejection(
        reason,
        detail,
        tenant_id=subject if isinstance(subject, str) and len(subject) <= 64 else "",
        event_id=event_id if isinstance(event_id, str) and len(event_id) <= 128 else "",
    )


def _epoch_ms(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        return None
    if instant.tzinfo is None:  # RFC 3339 requires an offset
        return None
    return (instant - _EPOCH) // _MS


def to_cloudevent(event: Event, source: str = "fairuse") -> dict[str, Any]:
    """The CloudEvents 1.0 form of ``event`` (the inverse of :func:`from_cloudevent`)."""
    fields = event.to_dict()
    for name in ("type", "event_id", "tenant_id", "ts", "v"):
        fields.pop(name)
    return {
        "specversion": "1.0",
        "id": event.event_id,
        "source": source,
        "type": CLOUDEVENTS_TYPE_PREFIX + event.type,
        "subject": event.tenant_id,
        "time": _rfc3339(event.ts),
        "datacontenttype": JSON,
        "data": fields,
    }


def _rfc3339(ms: int) -> str:
    instant = _EPOCH + ms * _MS
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")
