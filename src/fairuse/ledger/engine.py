"""The ledger: a fold of each tenant's events through the rules, emitting output records.

``Ledger.process(raw, source)`` parses one payload, drops repeated event ids, applies rules 1-6 and
returns the records in emission order: dead letters, usage accruals, violations, enforcement, then
adjustments and statements (rule 7), each in the order they arise. Pure: no I/O, no clock, no
environment; time is the events' time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

import orjson

from fairuse.errors import ConfigError
from fairuse.events import (
    ApiCall,
    CallDeleted,
    CallStored,
    Event,
    Rejection,
    RejectionReason,
    SessionHeartbeat,
    SessionStarted,
    SessionStopped,
    UsageNotice,
    UserActivated,
    UserDeactivated,
    encode_event,
)
from fairuse.ledger import escalation, metrics, notices, sessions, statements, thresholds
from fairuse.ledger.calendar import DAY_MS, Calendar, calendar_for
from fairuse.ledger.dedup import DEFAULT_HORIZON_MS
from fairuse.ledger.intake import parse
from fairuse.ledger.keyed import HOUR_MS, DictKeys, Keys
from fairuse.ledger.state import EXPIRED, USER_SEP, HeldStop, Session, TenantState
from fairuse.ledger.summary import Archive, archive_period, summary_rows
from fairuse.policy import Limits, Policy, Revision
from fairuse.records import (
    Enforcement,
    OutputRecord,
    UsageAccrual,
    dead_letter,
    rejected,
)

# the rules of a period by tenant, calendar and period
_PeriodRulesOf = Callable[[str, Calendar, str], tuple[Revision, Limits]]
UPKEEP_EVERY_MS = 60_000  # event time between expiry sweeps of a tenant
KEEP_PERIODS_MS = 100 * DAY_MS  # periods (and their status marks) older than this are archived


class _InForce:
    """The policy in force for one tenant over ``[lower, upper)`` of event time: its revision,
    limits and calendar, and what the per-event rules derive from them, once per revision rather
    than per event or accrual."""

    __slots__ = (
        "calendar",
        "expiry_ms",
        "flat",
        "limits",
        "lower",
        "per_user",
        "period_rules",
        "revision",
        "statement_rules",
        "upper",
    )

    def __init__(
        self,
        lower: int,
        upper: int,
        revision: Revision,
        limits: Limits,
        statement_rules: statements.PeriodRules,
        period_rules: _PeriodRulesOf | None,
    ) -> None:
        self.lower = lower
        self.upper = upper
        self.revision = revision
        self.limits = limits
        self.calendar = calendar_for(limits.timezone)
        self.statement_rules = statement_rules  # the revision and limits judging each period
        self.period_rules = period_rules  # the same by tenant (None: one revision judges all)
        self.expiry_ms = limits.session_expiry_s * 1000  # rule 1: longest gap in a session
        self.per_user = limits.allowance == "per_user"  # rule 4: each user's own hours too
        self.flat = limits.channel_weighting == "flat"  # rule 2: audio counts as mono


class _Step:
    """The work of one event: its context and the records it emits.

    ``out`` collects dead letters, then usage accruals, then violations (handlers emit dead
    letters and accruals, never both; violations are checked last); enforcement is kept apart and
    appended at the end.
    """

    __slots__ = ("enforcement", "out", "rules", "state", "touched", "ts")

    def __init__(self, state: TenantState, rules: _InForce, ts: int) -> None:
        self.state = state
        self.rules = rules
        self.ts = ts
        self.out: list[OutputRecord] = []
        self.enforcement: list[Enforcement] | None = None
        self.touched: list[tuple[str, str]] | None = None

    def touch(self, metric: str, period: str) -> None:
        """Note that a metric of a period changed (checked once the event is applied)."""
        key = (metric, period)
        if self.touched is None:
            self.touched = [key]
        elif key not in self.touched:
            self.touched.append(key)

    def reject(
        self,
        raw: bytes | str,
        reason: RejectionReason,
        detail: str,
        source: str,
        event_id: str,
        ts: int,
    ) -> None:
        self.out.append(
            dead_letter(
                raw,
                reason,
                detail,
                source=source,
                tenant_id=self.state.tenant_id,
                event_id=event_id,
                ts=ts,
            )
        )

    def accrue(self, session_id: str, session: Session, until_ts: int, event_id: str) -> None:
        """Rules 1-3: count the session's time up to ``until_ts``, split at local days; an event
        after a gap longer than the expiry accrues nothing and is counted late instead."""
        state = self.state
        rules = self.rules
        if (
            until_ts - session.last_seen > rules.expiry_ms or session.status == EXPIRED
        ):  # after a gap longer than the expiry, or after the session expired: late
            session.status = EXPIRED
            metrics.count_late(state, session.metric, rules.calendar.day_of(until_ts)[:7])
            return
        span = sessions.accrue(session, until_ts)
        if span is None:
            return
        tenant_id = state.tenant_id
        metric = session.metric
        weight = session.weight
        user_id = session.user_id
        append = self.out.append
        add_session_time = metrics.add_session_time
        own = f"{metric}{USER_SEP}{user_id}" if rules.per_user else ""
        held_notices = state.notices  # if any: the part of each piece inside them is announced
        announced = 0.0
        at, end = span
        for day, raw_ms in rules.calendar.split(at, end):
            weighted = raw_ms * weight
            month = day[:7]
            if held_notices:
                announced = notices.announced_ms(state, metric, at, at + raw_ms) * weight
                at += raw_ms
            add_session_time(state, metric, month, raw_ms, weighted, announced)
            if own:
                add_session_time(state, own, month, raw_ms, weighted, announced)
                self.touch(own, month)
            else:
                self.touch(metric, month)
            append(
                UsageAccrual(
                    tenant_id=tenant_id,
                    metric=metric,  # type: ignore[arg-type]
                    day=day,
                    weighted_ms=weighted,
                    raw_ms=raw_ms,
                    session_id=session_id,
                    user_id=user_id,
                    event_id=event_id,
                )
            )

    def check_touched(self, touched: list[tuple[str, str]]) -> None:
        """Rules 5-6 for every metric period this event changed, each judged by the revision in
        force at the period's start (escalation by the limits in force at the event)."""
        state = self.state
        rules = self.rules
        for metric, period in touched:
            if rules.period_rules is None:  # one revision: it judges every period
                revision, limits = rules.revision, rules.limits
            else:
                revision, limits = rules.period_rules(state.tenant_id, rules.calendar, period)
            observed, limit, seat_count = metrics.measure(
                state, metric, period, limits, rules.calendar
            )
            if observed < limits.warning_ratio * limit:
                continue
            found = thresholds.check(
                state,
                metric,
                period,
                observed,
                limit,
                seats=seat_count,
                warning_ratio=limits.warning_ratio,
                revision_id=revision.id,
                ts=self.ts,
            )
            for violation in found:
                self.out.append(violation)
                actions = escalation.on_violation(state, violation, rules.limits, rules.calendar)
                if actions:
                    if self.enforcement is None:
                        self.enforcement = []
                    self.enforcement.extend(actions)


def _raw_text(raw: bytes | str | None, event: Event) -> str:
    if raw is None:
        return encode_event(event).decode()
    return raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "replace")


def _on_start(step: _Step, event: SessionStarted, raw: bytes | str | None, source: str) -> None:
    state = step.state
    sid = event.session_id
    if sessions.is_known(state, sid):
        step.reject(
            raw if raw is not None else encode_event(event),
            "duplicate_start",
            f"session '{sid}' was already started",
            source,
            event.event_id,
            event.ts,
        )
        return
    session = sessions.open_session(state, event, flat=step.rules.flat)
    held = sessions.take_held_stop(state, sid)
    if held is None:
        return
    if held.ts < event.ts:
        step.reject(
            held.raw,
            "stop_before_start",
            f"stop at {held.ts} is earlier than the start of session '{sid}' at {event.ts}",
            held.source,
            held.event_id,
            held.ts,
        )
        return
    step.accrue(sid, session, held.ts, held.event_id)
    sessions.end_session(state, sid, held.ts)


def _reject_orphan(
    step: _Step, event: SessionHeartbeat | SessionStopped, raw: bytes | str | None, source: str
) -> bool:
    """Dead-letter a heartbeat or stop of a session whose start was dead-lettered."""
    if event.session_id not in step.state.rejected:
        return False
    step.reject(
        raw if raw is not None else encode_event(event),
        "rejected_session",
        f"the start of session '{event.session_id}' was dead-lettered",
        source,
        event.event_id,
        event.ts,
    )
    return True


def _on_heartbeat(
    step: _Step, event: SessionHeartbeat, raw: bytes | str | None, source: str
) -> None:
    session = step.state.sessions.get(event.session_id)
    if session is not None:
        step.accrue(event.session_id, session, event.ts, event.event_id)
    elif step.state.rejected:
        _reject_orphan(step, event, raw, source)


def _on_stop(step: _Step, event: SessionStopped, raw: bytes | str | None, source: str) -> None:
    state = step.state
    sid = event.session_id
    session = state.sessions.get(sid)
    if session is None:
        if state.rejected and _reject_orphan(step, event, raw, source):
            return
        if not sessions.has_stopped(state, sid):
            held = HeldStop(event.event_id, event.ts, _raw_text(raw, event), source)
            sessions.hold_stop(state, sid, held)
        return
    if event.ts < session.start_ts:
        step.reject(
            raw if raw is not None else encode_event(event),
            "stop_before_start",
            f"stop at {event.ts} is earlier than the start of session '{sid}' at "
            f"{session.start_ts}",
            source,
            event.event_id,
            event.ts,
        )
        return
    step.accrue(sid, session, event.ts, event.event_id)
    sessions.end_session(state, sid, event.ts)


def _on_api_call(step: _Step, event: ApiCall, raw: bytes | str | None, source: str) -> None:
    day = step.rules.calendar.day_of(event.ts)
    metrics.add_api_calls(step.state, day, event.count)
    step.touch("api_calls", day)


def _on_call_stored(step: _Step, event: CallStored, raw: bytes | str | None, source: str) -> None:
    if metrics.store_call(step.state, event.call_id):
        step.touch("stored_calls_per_user", step.rules.calendar.day_of(event.ts)[:7])


def _on_call_deleted(step: _Step, event: CallDeleted, raw: bytes | str | None, source: str) -> None:
    if metrics.delete_call(step.state, event.call_id):
        step.touch("stored_calls_per_user", step.rules.calendar.day_of(event.ts)[:7])


def _roster_changed(step: _Step) -> None:
    """A seat came or went: re-check every seat-dependent metric of the current month."""
    state = step.state
    month = step.rules.calendar.day_of(step.ts)[:7]
    for metric in metrics.SEAT_METRICS:
        has_row = month in state.periods.get(metric, ())
        if has_row or (metric == "stored_calls_per_user" and state.calls):
            step.touch(metric, month)


def _on_activated(step: _Step, event: UserActivated, raw: bytes | str | None, source: str) -> None:
    metrics.integrate_seats(step.state, step.rules.calendar, event.ts)
    if metrics.activate_user(step.state, event.user_id):
        _roster_changed(step)


def _on_deactivated(
    step: _Step, event: UserDeactivated, raw: bytes | str | None, source: str
) -> None:
    metrics.integrate_seats(step.state, step.rules.calendar, event.ts)
    if metrics.deactivate_user(step.state, event.user_id):
        _roster_changed(step)


def _on_notice(step: _Step, event: UsageNotice, raw: bytes | str | None, source: str) -> None:
    why = notices.out_of_bounds(event, step.rules.limits)
    notices.add_notice(step.state, event, why)
    if why:
        step.reject(
            raw if raw is not None else encode_event(event),
            "notice_out_of_bounds",
            f"{why}: kept, but it excuses nothing",
            source,
            event.event_id,
            event.ts,
        )


_HANDLERS: dict[type[Event], Callable[[_Step, Any, bytes | str | None, str], None]] = {
    SessionStarted: _on_start,
    SessionHeartbeat: _on_heartbeat,
    SessionStopped: _on_stop,
    ApiCall: _on_api_call,
    CallStored: _on_call_stored,
    CallDeleted: _on_call_deleted,
    UserActivated: _on_activated,
    UserDeactivated: _on_deactivated,
    UsageNotice: _on_notice,
}


class Ledger:
    """The rules applied to every tenant's events, with per-tenant :class:`TenantState`.

    ``states`` holds the tenants' entries (decoded) and ``keys`` their keyed collections (see
    :mod:`fairuse.ledger.keyed`); both are plain dicts by default (replay). The worker passes a
    mapping that loads entries from its store and an overlay of keys (``fairuse.stream.core``);
    each state is set back into ``states`` after every event that is not a duplicate.
    """

    def __init__(
        self,
        policy: Policy,
        states: MutableMapping[str, TenantState] | None = None,
        *,
        keys: Keys | None = None,
        dedup_horizon_ms: int = DEFAULT_HORIZON_MS,
    ) -> None:
        if dedup_horizon_ms < DEFAULT_HORIZON_MS:
            raise ConfigError("the dedup horizon must be at least 7 days")
        self._policy = policy
        self.states: MutableMapping[str, TenantState] = {} if states is None else states
        self.keys: Keys = DictKeys() if keys is None else keys
        self.dedup_horizon_ms = dedup_horizon_ms
        self.duplicates = 0
        self._archive: Archive = {}
        self._rules: dict[str, _InForce] = {}  # per tenant: the policy in force, cached
        self._period_rules: dict[tuple[str, str, str], tuple[Revision, Limits]] = {}

    @property
    def policy(self) -> Policy:
        """The policy; a new one applies from the next event on."""
        return self._policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        self._policy = policy
        self._rules.clear()
        self._period_rules.clear()

    def process(self, raw: bytes | str, source: str) -> list[OutputRecord]:
        """Parse one payload and apply it; a rejection becomes a dead letter from ``source``."""
        parsed = parse(raw)
        if isinstance(parsed, Rejection):
            return [rejected(raw, parsed, source=source), *self._rejected_start(raw, parsed)]
        return self.process_event(parsed, raw, source)

    def _rejected_start(self, raw: bytes | str, rejection: Rejection) -> list[OutputRecord]:
        """Note a dead-lettered ``session_started`` of a known tenant and session id, so that
        its heartbeats and stop are dead-lettered too (and a stop held for it now)."""
        if (
            not rejection.tenant_id
            or rejection.ts is None
            or b"session_started" not in (raw.encode() if isinstance(raw, str) else raw)
        ):
            return []
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return []
        session_id = obj.get("session_id") if isinstance(obj, dict) else None
        if obj.get("type") != "session_started" or not isinstance(session_id, str):
            return []
        tenant_id = rejection.tenant_id
        state = self.states.get(tenant_id)
        if state is None:
            state = TenantState.new(tenant_id, self.keys)
        held = sessions.note_rejected_start(state, session_id, rejection.ts)
        self.states[tenant_id] = state
        if held is None:
            return []
        return [
            dead_letter(
                held.raw,
                "rejected_session",
                f"the start of session '{session_id}' was dead-lettered",
                source=held.source,
                tenant_id=tenant_id,
                event_id=held.event_id,
                ts=held.ts,
            )
        ]

    def process_event(
        self, event: Event, raw: bytes | str | None, source: str
    ) -> list[OutputRecord]:
        """Apply one valid event (``raw`` is its payload, kept for ledger dead letters)."""
        tenant_id = event.tenant_id
        state = self.states.get(tenant_id)
        if state is None:
            state = TenantState.new(tenant_id, self.keys)
        ts = event.ts
        if state.seen.check_and_remember(event.event_id, ts, state.clock_ms, self.dedup_horizon_ms):
            self.duplicates += 1
            return []
        if ts > state.clock_ms:
            state.clock_ms = ts
        rules = self._rules.get(tenant_id)
        if rules is None or not rules.lower <= ts < rules.upper:
            rules = self._rules[tenant_id] = self._rules_at(tenant_id, ts)
            statements.calendar_changed(state)  # perhaps: rule 7 looks at its periods again
        if not state.seat_time.since:  # the tenant's first event: its seat time starts
            metrics.integrate_seats(state, rules.calendar, ts)
        step = _Step(state, rules, ts)
        if state.pending is not None:
            step.enforcement = escalation.lapse(state, rules.limits) or None
        if state.throttle is not None:
            lifted = escalation.lift(state)
            if lifted:
                step.enforcement = (step.enforcement or []) + lifted
        _HANDLERS[type(event)](step, event, raw, source)
        touched = step.touched
        if touched is not None:
            step.check_touched(touched)
        if statements.nothing_due(state, touched):
            settled = None
        else:
            settled = statements.settle(
                state, touched or (), rules.statement_rules, rules.calendar, event.event_id
            )
        if state.clock_ms >= state.next_upkeep_ms:
            self._upkeep(state, rules.limits)
        self.states[tenant_id] = state
        if step.enforcement is not None:
            step.out += step.enforcement
        if settled:
            step.out += settled
        return step.out

    def _statement_rules(
        self, tenant_id: str, calendar: Calendar, revision: Revision, limits: Limits
    ) -> statements.PeriodRules:
        """The revision and limits judging each period of a tenant (rule 7)."""
        if len(self._policy.revisions) <= 1:
            found = (revision, limits)
            return lambda period: found
        return lambda period: self._rules_of_period(tenant_id, calendar, period)

    def _rules_at(self, tenant_id: str, ts: int) -> _InForce:
        """The revision, limits and calendar in force for the tenant at ``ts``, and where they
        stop being in force (``[from, until)``)."""
        revision, limits = self._policy.limits_at(tenant_id, ts)
        starts = [r.effective_from_ms for r in self._policy.revisions]
        index = starts.index(revision.effective_from_ms)
        lower = starts[index] if index > 0 else -(2**63)
        upper = starts[index + 1] if index + 1 < len(starts) else 2**63
        rules = self._statement_rules(tenant_id, calendar_for(limits.timezone), revision, limits)
        by_period = self._rules_of_period if len(self._policy.revisions) > 1 else None
        return _InForce(lower, upper, revision, limits, rules, by_period)

    def _rules_of_period(
        self, tenant_id: str, calendar: Calendar, period: str
    ) -> tuple[Revision, Limits]:
        """The revision and limits that judge a local day or month: those in force at its
        start (a revision governs the periods that start at or after its ``effective_from``)."""
        key = (tenant_id, calendar.timezone, period)
        found = self._period_rules.get(key)
        if found is None:
            if len(self._period_rules) > 100_000:
                self._period_rules.clear()
            found = self._policy.limits_at(tenant_id, calendar.period_start(period))
            self._period_rules[key] = found
        return found

    def expire_idle(
        self, now_ms: int, tenant_ids: Iterable[str] | None = None
    ) -> list[OutputRecord]:
        """Close sessions silent for longer than the expiry at ``now_ms`` (event time), of
        ``tenant_ids`` (default: every tenant in ``states``).

        Closing emits nothing, so calling this at any moment never changes the output records.
        """
        for tenant_id in list(self.states if tenant_ids is None else tenant_ids):
            state = self.states[tenant_id]
            _, limits = self._policy.limits_at(tenant_id, now_ms)
            before = [s.status for s in state.sessions.values()]
            sessions.expire_sessions(state, now_ms, limits.session_expiry_s * 1000)
            if before != [s.status for s in state.sessions.values()]:
                self.states[tenant_id] = state
        return []

    def summary(self) -> list[dict[str, Any]]:
        """Usage summary rows for every tenant, metric and period seen (see docs)."""
        return summary_rows(self.states.values(), self._archive)

    def _upkeep(self, state: TenantState, limits: Limits) -> None:
        """Close idle sessions; once per event-time hour, forget the event ids past the dedup
        horizon; once per event-time day, the rest that is past its horizon."""
        now = state.clock_ms
        previous = state.next_upkeep_ms - UPKEEP_EVERY_MS
        sessions.expire_sessions(state, now, limits.session_expiry_s * 1000)
        state.next_upkeep_ms = now + UPKEEP_EVERY_MS
        if now // HOUR_MS == previous // HOUR_MS:
            return
        cutoff = now - self.dedup_horizon_ms
        # Hourly, so that deleting a day's ids is spread over the day: pruned once a day, a
        # tenant's day of ids became one batch's tombstones (a latency spike; docs/benchmarks.md).
        state.seen.prune(cutoff)
        if now // DAY_MS == previous // DAY_MS:
            return
        sessions.prune_sessions(state, cutoff)
        notices.prune_notices(state, cutoff)
        escalation.prune_strikes(state, now, limits)
        keep_from = calendar_for("UTC").day_of(now - KEEP_PERIODS_MS)[:7]
        for metric, rows in state.periods.items():
            for period in [p for p in rows if p[:7] < keep_from]:
                archive_period(self._archive, state.tenant_id, metric, period, rows.pop(period))
        state.marks.prune(keep_from)
        metrics.prune_seat_time(state, keep_from)
        statements.forget_closed(state, keep_from)
        state.next_close_ms = 0  # look at every row again (rows that no event touched)
