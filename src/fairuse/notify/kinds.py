"""Record kinds: what a subscriber subscribes to, derived from a record's own fields (pure).

The kind does not depend on the topic: records are recognised by their id field (the notifier
reads ``fairuse.statements`` by default too). The record's time is its ``ts``, a statement's
``closed_at`` or an adjustment's ``at``.

| record | id field | kind |
|---|---|---|
| violation | ``violation_id`` | ``violation.`` + status (warning, exceeded, excused) |
| enforcement | ``enforcement_id`` | ``enforcement.`` + kind (notice, action, lapsed, lifted) |
| adjustment | ``adjustment_id`` | ``adjustment`` |
| statement | ``statement_id`` | ``statement`` |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# (id field, field naming the sub-kind or "", family): checked in this order (an adjustment
# also names its statement_id, so it comes first).
_KINDS: tuple[tuple[str, str, str], ...] = (
    ("violation_id", "status", "violation"),
    ("enforcement_id", "kind", "enforcement"),
    ("adjustment_id", "", "adjustment"),
    ("statement_id", "", "statement"),
)

KNOWN_KINDS = (
    "violation.warning",
    "violation.exceeded",
    "violation.excused",
    "enforcement.notice",
    "enforcement.action",
    "enforcement.lapsed",  # issue 9: a notice lapsed
    "enforcement.lifted",  # issue 9: a throttle ended
    "adjustment",
    "statement",
)
FAMILIES = ("violation", "enforcement", "adjustment", "statement")


@dataclass(frozen=True, slots=True)
class RecordRef:
    """What the notifier needs to know of a record to route it."""

    record_id: str
    kind: str
    tenant_id: str
    ts: int


def identify(record: Any) -> RecordRef | None:
    """The id, kind, tenant and time of a decoded record; ``None`` if it is none of the above."""
    if not isinstance(record, dict) or not isinstance(record.get("tenant_id"), str):
        return None
    for id_field, sub_field, family in _KINDS:
        record_id = record.get(id_field)
        if not isinstance(record_id, str) or not record_id:
            continue
        kind = family
        if sub_field:
            sub = record.get(sub_field)
            if not isinstance(sub, str) or f"{family}.{sub}" not in KNOWN_KINDS:
                return None
            kind = f"{family}.{sub}"
        ts = record.get("ts", record.get("closed_at", record.get("at")))  # statement, adjustment
        return RecordRef(record_id, kind, record["tenant_id"], ts if isinstance(ts, int) else 0)
    return None


def kind_matches(pattern: str, kind: str) -> bool:
    """Whether subscription ``pattern`` (``*``, a family such as ``violation``, or a kind such as
    ``violation.exceeded``) covers ``kind``."""
    return pattern in ("*", kind) or kind.startswith(f"{pattern}.")
