"""Output records of the core: the messages billing and the warehouse consume.

Each record type maps to one topic (``TOPIC``) and is JSON on the wire (:meth:`to_dict`), keyed by
``tenant_id``. Ids are deterministic, so a record published twice (after a crash) carries the same
id and consumers deduplicate by it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import orjson

from fairuse.events import Metric, Rejection, RejectionReason

Status = Literal["warning", "exceeded", "excused"]
EnforcementKind = Literal["notice", "action", "lapsed", "lifted"]
EnforcementAction = Literal["throttle", "charge"]
Unit = Literal["hours", "calls", "calls_per_user"]


def stable_id(*parts: object) -> str:
    """A deterministic 32-hex-digit id from ``parts`` (blake2b-128 of their '\\x1f'-joined text)."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Record:
    """Base of output records."""

    TOPIC: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """The record as its JSON object."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    def to_json(self) -> bytes:
        """The record's wire payload."""
        return orjson.dumps(self.to_dict())


@dataclass(frozen=True, slots=True)
class Violation(Record):
    """A metric of a tenant reached a threshold in a period (``YYYY-MM`` or ``YYYY-MM-DD``)."""

    TOPIC: ClassVar[str] = "fairuse.violations"
    violation_id: str
    tenant_id: str
    metric: Metric
    period: str
    status: Status
    observed: float
    limit: float
    unit: Unit
    seats: float
    policy_revision: str
    ts: int
    user_id: str = ""  # per-user allowance: the user whose own hours are measured; "" pooled


@dataclass(frozen=True, slots=True)
class Enforcement(Record):
    """A step of the escalation ladder: advance ``notice``, then the ``action`` itself."""

    TOPIC: ClassVar[str] = "fairuse.enforcement"
    enforcement_id: str
    tenant_id: str
    kind: EnforcementKind
    action: EnforcementAction
    ts: int
    effective_at: int
    strikes: tuple[str, ...]
    metrics: tuple[dict[str, Any], ...] = ()  # each strike's metric, period, observed, limit,
    # excess and unit (notice and action)
    until: int | None = None  # a throttle action's end (exclusive); None otherwise


@dataclass(frozen=True, init=False)
class UsageAccrual(Record):
    """Recorded time the ledger counted for one session on one local day.

    One is built per accrual piece (most of the ledger's output), so it keeps its fields in a
    ``__dict__`` filled at once rather than in slots set one by one through the frozen
    dataclass's ``object.__setattr__``: about 2.5x cheaper to build, and orjson writes it about
    4x faster. Still frozen (assignment raises), hashable and equal by its fields.
    """

    TOPIC: ClassVar[str] = "fairuse.usage"
    tenant_id: str
    metric: Metric
    day: str
    weighted_ms: float
    raw_ms: int
    session_id: str
    user_id: str
    event_id: str

    def __init__(
        self,
        tenant_id: str,
        metric: Metric,
        day: str,
        weighted_ms: float,
        raw_ms: int,
        session_id: str,
        user_id: str,
        event_id: str,
    ) -> None:
        # in the fields' order: orjson writes a __dict__ in its order
        self.__dict__.update(
            tenant_id=tenant_id,
            metric=metric,
            day=day,
            weighted_ms=weighted_ms,
            raw_ms=raw_ms,
            session_id=session_id,
            user_id=user_id,
            event_id=event_id,
        )


@dataclass(frozen=True, slots=True)
class DeadLetter(Record):
    """Input that could not be processed, with its raw payload and the precise reason.

    ``raw`` is the payload as UTF-8 text, or base64 when it is not valid UTF-8
    (``raw_encoding``). ``source`` says where it came from (``topic/partition/offset`` when
    streaming, ``file:line`` in replay). ``dead_letter_id`` derives from the source position, the
    reason and the payload, so the same input at the same position always gets the same id;
    streaming and replay of one input differ only in ``source`` and ``dead_letter_id``.
    """

    TOPIC: ClassVar[str] = "fairuse.dead-letter"
    dead_letter_id: str
    tenant_id: str
    event_id: str
    reason: RejectionReason
    detail: str
    raw: str
    raw_encoding: Literal["utf-8", "base64"]
    ts: int | None
    source: str


@dataclass(frozen=True, slots=True)
class Statement(Record):
    """The final figures of a closed period of one tenant and metric, for billing.

    Emitted once when the tenant clock passes the period's end plus ``close_grace``;
    ``period_start``/``period_end`` are ISO instants (UTC), ``closed_at`` the tenant clock (ms).
    """

    TOPIC: ClassVar[str] = "fairuse.statements"
    kind: Literal["statement"]
    statement_id: str
    tenant_id: str
    metric: Metric
    period: str
    period_start: str
    period_end: str
    observed: float
    limit: float
    seats: float
    excess: float
    unit: Unit
    announced: float
    violation_ids: tuple[str, ...]
    policy_revision: str
    closed_at: int


@dataclass(frozen=True, slots=True)
class Adjustment(Record):
    """A change to a closed period (its statement) caused by one late event (``caused_by``)."""

    TOPIC: ClassVar[str] = "fairuse.statements"
    kind: Literal["adjustment"]
    adjustment_id: str
    statement_id: str
    tenant_id: str
    metric: Metric
    period: str
    delta_observed: float
    delta_excess: float
    delta_announced: float
    caused_by: str
    at: int


def dead_letter(
    raw: bytes | str,
    reason: RejectionReason,
    detail: str,
    *,
    source: str,
    tenant_id: str = "",
    event_id: str = "",
    ts: int | None = None,
) -> DeadLetter:
    """Build a :class:`DeadLetter` for ``raw``; its id derives from the source position."""
    payload = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    try:
        text, encoding = payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(payload).decode("ascii"), "base64"
    return DeadLetter(
        dead_letter_id=stable_id(source, reason, hashlib.blake2b(payload).hexdigest()),
        tenant_id=tenant_id,
        event_id=event_id,
        reason=reason,
        detail=detail,
        raw=text,
        raw_encoding=encoding,  # type: ignore[arg-type]
        ts=ts,
        source=source,
    )


def rejected(raw: bytes | str, rejection: Rejection, *, source: str) -> DeadLetter:
    """The :class:`DeadLetter` of a payload that :func:`fairuse.events.parse_event` rejected."""
    return dead_letter(
        raw,
        rejection.reason,
        rejection.detail,
        source=source,
        tenant_id=rejection.tenant_id,
        event_id=rejection.event_id,
        ts=rejection.ts,
    )


OutputRecord = Violation | Enforcement | UsageAccrual | DeadLetter | Statement | Adjustment
