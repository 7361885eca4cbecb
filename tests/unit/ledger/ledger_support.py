"""Helpers for the ledger tests: instants, policies and a feed of events for one tenant."""

from __future__ import annotations

from datetime import datetime
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from fairuse.events import TS_MIN_MS
from fairuse.ledger import Ledger
from fairuse.policy import Limits, Policy, Revision
from fairuse.records import DeadLetter, Enforcement, OutputRecord, UsageAccrual, Violation

HOUR = 3_600_000
MINUTE = 60_000
DAY = 24 * HOUR


def ms(text: str, zone: str = "UTC") -> int:
    """Epoch ms of a local ISO date-time in ``zone`` (e.g. ``ms("2026-03-02T08:00")``)."""
    local = datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))
    return int(local.timestamp() * 1000)


LONG_EXPIRY_S = 1_000_000_000  # so that a start and a stop hours apart are one live session


def policy(revision_id: str = "r1", tenants: dict[str, Limits] | None = None, **limits: Any):
    """A one-revision policy in force since 2000 with the given limits; sessions expire only
    after :data:`LONG_EXPIRY_S` unless ``session_expiry_s`` is given, and prior notices need no
    lead time unless ``notice_min_lead`` is given."""
    limits.setdefault("session_expiry_s", LONG_EXPIRY_S)
    limits.setdefault("notice_min_lead", 0)
    return Policy([Revision(revision_id, TS_MIN_MS, Limits(**limits), tenants or {})])


class Feed:
    """Sends events of one tenant to a ledger, with generated event ids."""

    def __init__(self, ledger: Ledger | None = None, tenant: str = "acme", **limits: Any) -> None:
        self.ledger = ledger if ledger is not None else Ledger(policy(**limits))
        self.tenant = tenant
        self._ids = count(1)
        self.sent: list[bytes] = []

    def payload(self, kind: str, ts: int, event_id: str | None = None, **fields: Any) -> bytes:
        event_id = event_id or f"{self.tenant}-e{next(self._ids)}"
        obj = {"type": kind, "event_id": event_id, "tenant_id": self.tenant, "ts": ts, **fields}
        return orjson.dumps(obj)

    def send(self, kind: str, ts: int, event_id: str | None = None, **fields: Any):
        raw = self.payload(kind, ts, event_id, **fields)
        self.sent.append(raw)
        return self.ledger.process(raw, f"test:{len(self.sent)}")

    def start(self, sid: str, ts: int, media: str = "audio", user: str = "u1", **extra: Any):
        return self.send("session_started", ts, session_id=sid, user_id=user, media=media, **extra)

    def beat(self, sid: str, ts: int, **kw: Any):
        return self.send("session_heartbeat", ts, session_id=sid, **kw)

    def stop(self, sid: str, ts: int, **kw: Any):
        return self.send("session_stopped", ts, session_id=sid, **kw)

    @property
    def state(self):
        return self.ledger.states[self.tenant]


def accruals(records: list[OutputRecord]) -> list[UsageAccrual]:
    return [r for r in records if isinstance(r, UsageAccrual)]


def violations(records: list[OutputRecord]) -> list[Violation]:
    return [r for r in records if isinstance(r, Violation)]


def enforcement(records: list[OutputRecord]) -> list[Enforcement]:
    return [r for r in records if isinstance(r, Enforcement)]


def dead(records: list[OutputRecord]) -> list[DeadLetter]:
    return [r for r in records if isinstance(r, DeadLetter)]


def statuses(records: list[OutputRecord]) -> list[tuple[str, str, str]]:
    """``(metric, period, status)`` of each violation, in order."""
    return [(v.metric, v.period, v.status) for v in violations(records)]
