"""Rule 7 (issue 10): closing periods into statements, and adjusting closed periods.

**Close.** When the tenant clock (its newest event time) reaches the end of a local day or month
plus ``close_grace`` hours (of the revision in force at the period's start), each metric of that
period the tenant has a row for gets one :class:`~fairuse.records.Statement` with its final
figures, and the period is closed. Statements of one event come sorted by metric and period.

**Adjust.** An event that changes a closed period is still counted; it emits one
:class:`~fairuse.records.Adjustment` per closed period it changes (the deltas against what
billing last heard: the statement plus the earlier adjustments). A change of nothing billing
sees (observed, excess, announced) emits nothing.

**Bounded.** The closed figures live beside the period rows and are forgotten with them, 100
days (``KEEP_PERIODS_MS``) after the period; ``closed_before`` remembers that every period before
that month was closed. An event for such a forgotten period is adjusted against zero: its
``delta_observed``/``delta_announced`` are exact, its ``delta_excess`` counts only what arrived
since (the statement's observed is no longer known).

Pure: the engine calls :func:`settle` after the rules of every event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from fairuse.ledger.calendar import Calendar
from fairuse.ledger.keyed import HOUR_MS
from fairuse.ledger.metrics import HOUR_METRICS, MS_PER_HOUR, UNITS, average_seats, limit_of, seats
from fairuse.ledger.state import USER_SEP, CallsRow, Closed, HoursRow, StoredRow, TenantState
from fairuse.ledger.thresholds import violation_id
from fairuse.policy import Limits, Revision
from fairuse.records import Adjustment, Statement, stable_id

NEVER = 2**62  # ``next_close_ms`` when no period is open
PeriodRules = Callable[[str], tuple[Revision, Limits]]  # period -> revision and limits judging it


def statement_id(tenant_id: str, metric: str, period: str) -> str:
    """The deterministic id of a period's statement."""
    return stable_id(tenant_id, "statement", metric, period)


def adjustment_id(statement: str, sequence: int, event_id: str) -> str:
    """The deterministic id of the ``sequence``-th (1-based) adjustment of a statement."""
    return stable_id(statement, "adjustment", sequence, event_id)


def closes_at(calendar: Calendar, period: str, limits: Limits) -> int:
    """The tenant clock at which ``period`` closes: its end plus ``close_grace`` hours."""
    return calendar.period_end(period) + limits.close_grace * HOUR_MS


def is_closed(state: TenantState, metric: str, period: str) -> bool:
    """Whether the metric's period was closed (and perhaps forgotten since)."""
    return (metric, period) in state.closed or period[:7] < state.closed_before


def figures(
    state: TenantState, metric: str, period: str, limits: Limits, calendar: Calendar
) -> tuple[float, float, float, float, float]:
    """``(observed, limit, seats, excess, announced)`` of a period now (reads, never writes).

    Hours: observed leaves out usage inside prior notices (``announced``); seats are the month's
    average; under the per-user allowance the excess is the sum of each user's excess over one
    seat's allowance. API calls: the day's calls, seats = named active users now. Stored calls
    per user: as of the month's last check.
    """
    row = state.periods.get(metric, {}).get(period)
    announced = 0.0
    if metric in HOUR_METRICS:
        seat_count = average_seats(state, calendar, period)
        limit = float(limit_of(metric, limits, seat_count))
        observed = 0.0
        if type(row) is HoursRow:
            observed = (row.weighted_ms - row.announced) / MS_PER_HOUR
            announced = row.announced / MS_PER_HOUR
        if limits.allowance == "per_user":
            own_limit = limit_of(metric, limits, 1.0)
            excess = sum(
                max(0.0, (own.weighted_ms - own.announced) / MS_PER_HOUR - own_limit)
                for key, rows in state.periods.items()
                if key.startswith(metric + USER_SEP)
                for own in (rows.get(period),)
                if type(own) is HoursRow
            )
            return observed, limit, seat_count, excess, announced
    else:
        seat_count = float(seats(state))
        limit = float(limit_of(metric, limits, seat_count))
        if type(row) is CallsRow:
            observed = float(row.calls)
        elif type(row) is StoredRow:
            observed = float(row.observed)
        else:
            observed = 0.0
    return observed, limit, seat_count, max(0.0, observed - limit), announced


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _violation_ids(state: TenantState, metric: str, period: str) -> tuple[str, ...]:
    """The violations emitted for the period: pooled first, then per user, each in order."""
    tenant_id = state.tenant_id
    return tuple(
        violation_id(tenant_id, key, period, status)
        for (key, p), statuses in sorted(state.marks.emitted.items())
        if p == period and key.partition(USER_SEP)[0] == metric
        for status in statuses
    )


def _close(
    state: TenantState, metric: str, period: str, rules: PeriodRules, calendar: Calendar
) -> Statement:
    revision, limits = rules(period)
    observed, limit, seat_count, excess, announced = figures(
        state, metric, period, limits, calendar
    )
    state.closed[(metric, period)] = Closed(observed, excess, announced)
    return Statement(
        kind="statement",
        statement_id=statement_id(state.tenant_id, metric, period),
        tenant_id=state.tenant_id,
        metric=metric,  # type: ignore[arg-type]
        period=period,
        period_start=_iso(calendar.period_start(period)),
        period_end=_iso(calendar.period_end(period)),
        observed=observed,
        limit=limit,
        seats=seat_count,
        excess=excess,
        unit=UNITS[metric],
        announced=announced,
        violation_ids=_violation_ids(state, metric, period),
        policy_revision=revision.id,
        closed_at=state.clock_ms,
    )


def _adjust(
    state: TenantState,
    metric: str,
    period: str,
    rules: PeriodRules,
    calendar: Calendar,
    event_id: str,
) -> Adjustment | None:
    _, limits = rules(period)
    observed, _, _, excess, announced = figures(state, metric, period, limits, calendar)
    heard = state.closed.get((metric, period))
    if heard is None:  # closed and forgotten: billing's figures are no longer known
        heard = state.closed[(metric, period)] = Closed(0.0, 0.0, 0.0)
    deltas = (observed - heard.observed, excess - heard.excess, announced - heard.announced)
    if deltas == (0.0, 0.0, 0.0):
        return None
    heard.observed, heard.excess, heard.announced = observed, excess, announced
    heard.adjustments += 1
    statement = statement_id(state.tenant_id, metric, period)
    return Adjustment(
        kind="adjustment",
        adjustment_id=adjustment_id(statement, heard.adjustments, event_id),
        statement_id=statement,
        tenant_id=state.tenant_id,
        metric=metric,  # type: ignore[arg-type]
        period=period,
        delta_observed=deltas[0],
        delta_excess=deltas[1],
        delta_announced=deltas[2],
        caused_by=event_id,
        at=state.clock_ms,
    )


def settle(
    state: TenantState,
    touched: Sequence[tuple[str, str]],
    rules: PeriodRules,
    calendar: Calendar,
    event_id: str,
) -> list[Statement | Adjustment]:
    """After event ``event_id`` changed the ``touched`` (metric, period) pairs: adjustments
    for the closed ones, then statements for every open period whose close time has come."""
    next_close = state.next_close_ms
    if next_close > state.clock_ms:
        # The usual event: nothing is due, and every touched period ends at or after the next
        # close time, so it is open (a closed one ended before the clock) and closes no earlier.
        known = state.open_until_close
        for key in touched:
            if key not in known:
                if calendar.period_end(key[1]) < next_close:
                    break
                known.add(key)
        else:
            return []
    out: list[Statement | Adjustment] = []
    seen: set[tuple[str, str]] = set()
    for key, period in touched:
        metric = key.partition(USER_SEP)[0]
        if (metric, period) in seen:
            continue
        seen.add((metric, period))
        if is_closed(state, metric, period):
            adjustment = _adjust(state, metric, period, rules, calendar, event_id)
            if adjustment is not None:
                out.append(adjustment)
        else:
            at = closes_at(calendar, period, rules(period)[1])
            if at < state.next_close_ms:
                _close_next_at(state, at)
    if state.clock_ms >= state.next_close_ms:
        out.extend(close_due(state, rules, calendar))
    return out


def close_due(state: TenantState, rules: PeriodRules, calendar: Calendar) -> list[Statement]:
    """Close every open period whose close time the tenant clock has reached (sorted by metric
    and period), and note when the next one closes."""
    due: list[tuple[str, str]] = []
    next_close = NEVER
    now = state.clock_ms
    for metric, rows in state.periods.items():
        if USER_SEP in metric:
            continue
        for period in rows:
            if is_closed(state, metric, period):
                continue
            at = closes_at(calendar, period, rules(period)[1])
            if at <= now:
                due.append((metric, period))
            elif at < next_close:
                next_close = at
    _close_next_at(state, next_close)
    return [_close(state, metric, period, rules, calendar) for metric, period in sorted(due)]


def nothing_due(state: TenantState, touched: Sequence[tuple[str, str]] | None) -> bool:
    """Whether :func:`settle` would surely emit nothing after an event that changed the
    ``touched`` (metric key, period) pairs: no close time is reached, and each pair is known
    to stay open until the next one. Reads two attributes: the engine asks it on every event."""
    return state.clock_ms < state.next_close_ms and (
        touched is None or state.open_until_close.issuperset(touched)
    )


def _close_next_at(state: TenantState, at: int) -> None:
    """Note the tenant clock at which the next open period closes."""
    if at != state.next_close_ms:
        state.next_close_ms = at
        state.open_until_close.clear()  # known to end at or after the old time only


def calendar_changed(state: TenantState) -> None:
    """The tenant's calendar changed (a revision with another time zone came into force): the
    periods known to stay open were judged by the old one."""
    state.open_until_close.clear()


def forget_closed(state: TenantState, keep_from: str) -> None:
    """Forget the closed figures of periods before ``keep_from`` (``YYYY-MM``), with their rows;
    they stay known as closed."""
    state.closed = {k: c for k, c in state.closed.items() if k[1][:7] >= keep_from}
    if keep_from > state.closed_before:
        state.closed_before = keep_from
