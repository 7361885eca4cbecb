"""The ledger's memory of one tenant: :class:`TenantState`, typed accumulators and byte forms.

The state is a small entry whose size does not grow with the tenant's history (open sessions,
the periods of the last 100 days and their closed figures, status marks, notices, strikes, the
pending notice, the roster, counters) plus keyed collections that do grow with it and therefore
keep one key per item outside the entry (stored call ids, remembered event ids, stopped
sessions; see :mod:`fairuse.ledger.keyed`).

Every accumulator is a small class owning its row shape and its byte form. Rows are
:class:`Packed` dataclasses: their byte form is the list of their fields in order, so a field
added at the end with a default still reads the rows written before it. The entry's byte form is
an orjson object (``FORMAT_VERSION`` 3) naming each accumulator; ``TenantState.from_bytes(
s.to_bytes(), keys) == s``. Entries of formats 1 and 2 (one positional array holding every call
id and remembered event) are converted by :meth:`TenantState.from_legacy`.
"""

from __future__ import annotations

from base64 import b64decode
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import orjson

from fairuse.ledger.dedup import SeenIds
from fairuse.ledger.keyed import DictKeys, ExpiringTimes, KeyedSet, Keys, tenant_key

FORMAT_VERSION = 3

OPEN = 0
CLOSED = 1  # silent longer than the session expiry at the tenant clock; a heartbeat within
# the expiry of its last event (arriving late) reopens it
EXPIRED = 2  # an event came more than the expiry after the previous one: ended for good


class Packed:
    """A slots dataclass whose byte form is the list of its fields, in order."""

    __slots__ = ()

    def to_list(self) -> list[Any]:
        """The fields' values in order."""
        return [getattr(self, name) for name in self.__slots__]  # type: ignore[attr-defined]

    @classmethod
    def from_list(cls, values: list[Any]) -> Self:
        """Rebuild from :meth:`to_list` (a shorter list leaves later fields at their defaults)."""
        return cls(*values)


@dataclass(slots=True)
class Session(Packed):
    """A started session that has not stopped yet (open, or closed by expiry)."""

    user_id: str
    metric: str  # "audio_hours" | "video_hours"
    weight: float
    start_ts: int
    start_event_id: str
    accrued_to: int  # usage is counted up to here
    last_seen: int  # time of the session's newest event
    status: int = OPEN


@dataclass(slots=True)
class HeldStop(Packed):
    """A stop that arrived before its session's start, kept until the start arrives."""

    event_id: str
    ts: int
    raw: str
    source: str


@dataclass(slots=True)
class PendingNotice(Packed):
    """An enforcement notice awaiting its ``effective_at`` (a throttle in force: its action id
    and ``until``), with the violations behind it, their metrics (one per strike, in order) and
    when it was issued (empty / 0 in entries written before they were kept)."""

    enforcement_id: str
    effective_at: int
    action: str
    violation_ids: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    issued_at: int = 0


@dataclass(slots=True)
class Notice(Packed):
    """A customer's prior notice of high traffic: ``[starts, ends)`` for ``metrics``, given at
    ``given`` by event ``event_id`` ("" / 0 in entries written before they were kept)."""

    starts: int
    ends: int
    metrics: list[str]
    why: str = ""  # why it excuses nothing (outside notice_min_lead / notice_max_length), or ""
    event_id: str = ""
    given: int = 0


@dataclass(slots=True)
class Strike(Packed):
    """An ``exceeded`` violation counting towards escalation."""

    violation_id: str
    ts: int
    metric: str = ""
    period: str = ""
    observed: float = 0.0
    limit: float = 0.0
    unit: str = ""

    def excess(self) -> dict[str, object]:
        """The strike's metric, period, observed, limit, excess and unit (for billing)."""
        return {
            "metric": self.metric,
            "period": self.period,
            "observed": self.observed,
            "limit": self.limit,
            "excess": self.observed - self.limit,
            "unit": self.unit,
        }


@dataclass(slots=True)
class SeatTime(Packed):
    """Named active users integrated over event time: seat-ms per local month since ``since``
    (the tenant's first event), integrated up to ``upto``."""

    since: int = 0
    upto: int = 0
    months: dict[str, float] = field(default_factory=dict)


# (month, calendar) -> average seats, tenant clock (-1: any)
SeatsMemo = dict[tuple[str, object], tuple[float, int]]


@dataclass(slots=True)
class HoursRow(Packed):
    """A month of audio or video hours: weighted and raw milliseconds, the latest limit."""

    weighted_ms: float
    raw_ms: int
    limit: float = 0.0
    late: int = 0  # events of sessions already ended by a gap (``late_after_expiry``)
    announced: float = 0.0  # weighted ms inside prior notices: left out of the compared total


@dataclass(slots=True)
class CallsRow(Packed):
    """A day of API calls and the latest limit."""

    calls: int
    limit: int = 0


@dataclass(slots=True)
class StoredRow(Packed):
    """A month's stored calls per seat at its latest check, and that check's limit."""

    observed: float
    limit: float | int


@dataclass(slots=True)
class Closed(Packed):
    """A closed period's figures as billing last heard them (its statement plus adjustments)."""

    observed: float
    excess: float
    announced: float
    adjustments: int = 0


Row = HoursRow | CallsRow | StoredRow
ROW_TYPES: dict[str, type[HoursRow] | type[CallsRow] | type[StoredRow]] = {
    "audio_hours": HoursRow,
    "video_hours": HoursRow,
    "api_calls": CallsRow,
    "stored_calls_per_user": StoredRow,
}


class Marks:
    """The violation statuses already emitted, per metric and period."""

    __slots__ = ("emitted",)
    STATUSES: ClassVar[tuple[str, ...]] = ("warning", "exceeded", "excused")

    def __init__(self, emitted: dict[tuple[str, str], list[str]] | None = None) -> None:
        self.emitted: dict[tuple[str, str], list[str]] = {} if emitted is None else emitted

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Marks) and self.emitted == other.emitted

    def __repr__(self) -> str:
        return f"Marks({self.emitted})"

    def has(self, metric: str, period: str, status: str) -> bool:
        """Whether ``status`` was emitted for the metric's period."""
        statuses = self.emitted.get((metric, period))
        return statuses is not None and status in statuses

    def add(self, metric: str, period: str, status: str) -> None:
        """Note that ``status`` was emitted for the metric's period."""
        self.emitted.setdefault((metric, period), []).append(status)

    def prune(self, keep_from: str) -> None:
        """Forget periods before ``keep_from`` (``YYYY-MM``)."""
        self.emitted = {k: v for k, v in self.emitted.items() if k[1][:7] >= keep_from}

    def to_list(self) -> list[list[Any]]:
        """``[[metric, period, [status, ...]], ...]``."""
        return [[metric, period, statuses] for (metric, period), statuses in self.emitted.items()]

    @classmethod
    def from_list(cls, values: list[list[Any]]) -> Marks:
        """Rebuild from :meth:`to_list`."""
        return cls({(metric, period): statuses for metric, period, statuses in values})


@dataclass(slots=True)
class TenantState:
    """Everything the rules remember about one tenant (mutable; see module docstring).

    ``periods`` maps metric -> period -> row (:data:`ROW_TYPES`); months for audio/video hours
    and stored calls per user, days for api_calls; ``{metric}@{user_id}`` keys hold each user's
    own audio/video hours while the per-user allowance is in force. ``keys`` is where the keyed
    collections (``seen``, ``ended``, ``calls``) read and write; it is not part of the entry.
    """

    tenant_id: str
    keys: Keys = field(compare=False, repr=False)
    seen: SeenIds  # event ids within the dedup horizon (keyed)
    ended: ExpiringTimes  # stopped session ids -> stop time (keyed; for duplicate starts)
    calls: KeyedSet  # stored call ids (keyed)
    clock_ms: int = 0  # newest event time seen
    sessions: dict[str, Session] = field(default_factory=dict)
    held_stops: dict[str, HeldStop] = field(default_factory=dict)
    users: dict[str, None] = field(default_factory=dict)  # named active users
    periods: dict[str, dict[str, Row]] = field(default_factory=dict)
    marks: Marks = field(default_factory=Marks)
    notices: dict[str, Notice] = field(default_factory=dict)
    strikes: list[Strike] = field(default_factory=list)
    pending: PendingNotice | None = None
    next_upkeep_ms: int = 0
    seat_time: SeatTime = field(default_factory=SeatTime)
    strike_day: str = ""  # local day of the newest strike (one strike per day)
    throttle: PendingNotice | None = None  # the throttle in force: action id, until, action
    rejected: dict[str, int] = field(default_factory=dict)  # dead-lettered starts: id -> ts
    closed: dict[tuple[str, str], Closed] = field(default_factory=dict)  # (metric, period)
    closed_before: str = ""  # periods before this month were closed and forgotten
    next_close_ms: int = 0  # tenant clock at which the next open period closes (0: look)
    # Not part of the entry (per-event speed): the average seats of each month (``metrics``)
    # and the (metric key, period) pairs known to end at or after ``next_close_ms`` under the
    # tenant's calendar, emptied when either changes (``statements``).
    seats_memo: SeatsMemo = field(default_factory=dict, compare=False, repr=False)
    open_until_close: set[tuple[str, str]] = field(default_factory=set, compare=False, repr=False)

    @classmethod
    def new(cls, tenant_id: str, keys: Keys | None = None) -> TenantState:
        """An empty state whose keyed collections live in ``keys`` (a fresh dict by default)."""
        keys = DictKeys() if keys is None else keys
        return cls(
            tenant_id,
            keys,
            SeenIds(keys, tenant_id),
            ExpiringTimes(keys, tenant_id, "s"),
            KeyedSet(keys, tenant_key(tenant_id, "c")),
        )

    def to_bytes(self) -> bytes:
        """The entry (everything but the keyed collections' items) as an orjson object.

        First seals the expiring collections (their ids listed since the last write go to
        index keys), so the entry and the keys it counts are written together.
        """
        seen, ended = self.seen, self.ended
        seen.seal()
        ended.seal()
        out: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "tenant": self.tenant_id,
            "clock": self.clock_ms,
            "upkeep": self.next_upkeep_ms,
            "seen": [list(seen.hours.items()), seen.cutoff],
            "ended": [list(ended.hours.items()), ended.cutoff],
            "calls": self.calls.count,
            "sessions": {sid: s.to_list() for sid, s in self.sessions.items()},
            "held": {sid: h.to_list() for sid, h in self.held_stops.items()},
            "users": list(self.users),
            "periods": {
                metric: {period: row.to_list() for period, row in rows.items()}
                for metric, rows in self.periods.items()
            },
            "marks": self.marks.to_list(),
            "notices": {nid: n.to_list() for nid, n in self.notices.items()},
            "strikes": [s.to_list() for s in self.strikes],
            "pending": None if self.pending is None else self.pending.to_list(),
            "seat_time": self.seat_time.to_list(),
            "strike_day": self.strike_day,
            "throttle": None if self.throttle is None else self.throttle.to_list(),
            "rejected": self.rejected,
        }
        if self.closed or self.closed_before or self.next_close_ms:  # rule 7, when in use
            out["closed"] = [
                self.closed_before,
                self.next_close_ms,
                [[m, p, *c.to_list()] for (m, p), c in self.closed.items()],
            ]
        if seen.legacy:
            out["legacy_seen"] = [[d.hex(), h] for d, h in seen.legacy.items()]
        return orjson.dumps(out)

    @classmethod
    def from_bytes(cls, data: bytes, keys: Keys) -> TenantState:
        """Rebuild a state written by :meth:`to_bytes`, its keyed collections in ``keys``."""
        obj = orjson.loads(data)
        if type(obj) is list:
            return cls.from_legacy(obj, keys)
        if obj["v"] != FORMAT_VERSION:
            raise ValueError(f"unsupported tenant state format {obj['v']}")
        tenant_id = obj["tenant"]
        state = cls.new(tenant_id, keys)
        seen_hours, state.seen.cutoff = obj["seen"]
        state.seen.hours = {int(h): n for h, n in seen_hours}
        state.seen.legacy = {bytes.fromhex(d): h for d, h in obj.get("legacy_seen", ())}
        ended_hours, state.ended.cutoff = obj["ended"]
        state.ended.hours = {int(h): n for h, n in ended_hours}
        state.calls.count = obj["calls"]
        state.clock_ms = obj["clock"]
        state.next_upkeep_ms = obj["upkeep"]
        state.sessions = {sid: Session.from_list(v) for sid, v in obj["sessions"].items()}
        state.held_stops = {sid: HeldStop.from_list(v) for sid, v in obj["held"].items()}
        state.users = dict.fromkeys(obj["users"])
        state.periods = _periods(obj["periods"])
        state.marks = Marks.from_list(obj["marks"])
        state.notices = {nid: Notice.from_list(v) for nid, v in obj["notices"].items()}
        state.strikes = [Strike.from_list(v) for v in obj["strikes"]]
        pending = obj["pending"]
        state.pending = None if pending is None else PendingNotice.from_list(pending)
        if "seat_time" in obj:  # absent from entries written before issue 9
            state.seat_time = SeatTime.from_list(obj["seat_time"])
            state.strike_day = obj["strike_day"]
            throttle = obj["throttle"]
            state.throttle = None if throttle is None else PendingNotice.from_list(throttle)
            state.rejected = obj["rejected"]
        if "closed" in obj:  # absent before issue 10, and while no period was looked at
            state.closed_before, state.next_close_ms, closed = obj["closed"]
            state.closed = {(m, p): Closed.from_list(c) for m, p, *c in closed}
        return state

    @classmethod
    def from_legacy(cls, values: list[Any], keys: Keys) -> TenantState:
        """Convert a format 1 or 2 entry (one positional array, every call id inside).

        Call ids and stopped sessions become keys (written through ``keys``); format 1's
        whole event ids too; format 2's id digests are kept read-only in ``seen.legacy``.
        """
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
        ) = values
        state = cls.new(tenant_id, keys)
        if version == 1:  # ids kept whole with their time
            for event_id, ts in seen_hours.items():
                state.seen.check_and_remember(event_id, ts, clock_ms, 0)
        elif version == 2:
            for hour, text in seen_hours.items():
                bucket = b64decode(text)
                for i in range(0, len(bucket), 8):
                    digest = bucket[i : i + 8]
                    if state.seen.legacy.get(digest, -1) < int(hour):
                        state.seen.legacy[digest] = int(hour)
        else:
            raise ValueError(f"unsupported tenant state format {version}")
        for sid, stop_ts in ended.items():
            state.ended.put(sid, stop_ts)
        for call_id in calls:
            state.calls.add(call_id)
        state.clock_ms = clock_ms
        state.next_upkeep_ms = next_upkeep_ms
        state.sessions = {sid: Session.from_list(v) for sid, v in sessions.items()}
        state.held_stops = {sid: HeldStop.from_list(v) for sid, v in held.items()}
        state.users = dict.fromkeys(users)
        state.periods = _periods(periods)
        for mark in marks:
            metric, period, status = mark.split("|")
            state.marks.add(metric, period, status)
        state.notices = {nid: Notice.from_list(v) for nid, v in notices.items()}
        state.strikes = [Strike.from_list(v) for v in strikes]
        state.pending = None if pending is None else PendingNotice.from_list(pending)
        return state


USER_SEP = "@"  # a per-user hours key in ``periods``: ``{metric}@{user_id}``


def _periods(obj: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, Row]]:
    return {
        key: {
            period: ROW_TYPES[key.partition(USER_SEP)[0]].from_list(row)
            for period, row in rows.items()
        }
        for key, rows in obj.items()
    }
