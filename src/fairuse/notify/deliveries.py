"""Deliveries, their durable state and their attempt log (pure data, JSON on the wire).

A *delivery* is one record for one target of one subscription. Its state lives in the compacted
topic ``notify-deliveries`` under its key: the pending delivery (attempts so far, next due time),
replaced after each failed attempt, and finally a small *done* marker (delivered, dead-lettered
or cancelled) that also lets a re-read record be recognised as already handled.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

import orjson

from fairuse.notify.subscriptions import Channel, Target
from fairuse.records import stable_id

Outcome = Literal["delivered", "failed", "cancelled"]
Final = Literal["delivered", "dead_lettered", "cancelled"]


def _shallow(obj: Delivery | Attempt) -> dict[str, Any]:
    """The fields of ``obj`` as a dict without ``asdict``'s deep copy (records are JSON)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def delivery_key(record_id: str, target: Target) -> str:
    """The deterministic key of a record's delivery to ``target``."""
    return stable_id(record_id, target.subscription, target.channel, target.address)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A pending delivery: the record, its target and its retry progress (times epoch ms)."""

    key: str
    record_id: str
    kind: str
    tenant_id: str
    record: dict[str, Any]
    published_at: int  # when the record reached its topic (Kafka append time)
    subscription: str
    channel: Channel
    address: str
    attempts: int = 0
    first_attempt_at: int = 0
    due_at: int = 0
    last_error: str = ""

    @property
    def target(self) -> Target:
        """The target this delivery goes to."""
        return Target(self.subscription, self.channel, self.address)

    def to_json(self) -> bytes:
        """The state-topic value."""
        return orjson.dumps(_shallow(self))


def done_marker(key: str, final: Final, at_ms: int) -> bytes:
    """The state-topic value of a finished delivery."""
    return orjson.dumps({"key": key, "done": final, "at": at_ms})


def parse_state(value: bytes) -> Delivery | str | None:
    """A state-topic value: the pending :class:`Delivery`, the ``done`` outcome, or ``None`` when
    the value is not one of ours (logged and skipped by the caller)."""
    try:
        obj = orjson.loads(value)
        if "done" in obj:
            return str(obj["done"])
        return Delivery(**obj)
    except (orjson.JSONDecodeError, TypeError):
        return None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt, as logged on ``fairuse.notifications`` (times epoch ms)."""

    notification_id: str
    record_id: str
    kind: str
    tenant_id: str
    subscription: str
    channel: Channel
    target: str
    attempt: int
    outcome: Outcome
    status: str  # HTTP status code or SMTP reply, "" when none came
    latency_ms: float
    error: str
    gave_up: bool  # this failed attempt was the last: the delivery went to the dead letters
    attempted_at: int
    record_ts: int
    published_at: int

    def to_json(self) -> bytes:
        """The delivery-log record."""
        return orjson.dumps(_shallow(self))


def attempt_record(
    delivery: Delivery,
    *,
    outcome: Outcome,
    status: str,
    latency_ms: float,
    error: str,
    gave_up: bool,
    attempted_at: int,
) -> Attempt:
    """The log record of ``delivery``'s attempt number ``delivery.attempts + 1``."""
    number = delivery.attempts + 1
    ts = delivery.record.get("ts")
    return Attempt(
        notification_id=stable_id(delivery.key, number),
        record_id=delivery.record_id,
        kind=delivery.kind,
        tenant_id=delivery.tenant_id,
        subscription=delivery.subscription,
        channel=delivery.channel,
        target=delivery.address,
        attempt=number,
        outcome=outcome,
        status=status,
        latency_ms=round(latency_ms, 3),
        error=error,
        gave_up=gave_up,
        attempted_at=attempted_at,
        record_ts=ts if isinstance(ts, int) else 0,
        published_at=delivery.published_at,
    )


def dead_letter_json(delivery: Delivery, reason: str, dead_at: int) -> bytes:
    """The ``fairuse.notify-dead-letter`` record of a delivery that failed its last attempt: the
    delivery's fields plus ``reason`` (the last error) and ``dead_at``."""
    return orjson.dumps({**_shallow(delivery), "reason": reason, "dead_at": dead_at})
