"""Rule 6: the escalation ladder, strike -> notice -> action (or lapse).

The first ``exceeded`` violation (not ``excused``) of a local day is a strike: one strike per
tenant per local day, however many limits are exceeded that day. Strikes count within the
trailing repeat window ``(ts - repeat_window_days, ts]``. When they reach ``repeat_threshold`` and
no notice is pending, an enforcement ``notice`` is emitted with ``effective_at = max(ts, tenant
clock) + notice_period_days`` and the policy's action. With a notice pending, the next strike at or
after ``effective_at`` emits the enforcement ``action`` (the action the notice announced), and the
strikes and the notice are cleared. A notice with no strike within the repeat window after its
``effective_at`` lapses once the tenant clock passes that: an enforcement ``lapsed`` record, and
the strikes before it no longer count. Ids: a notice's is ``stable_id(tenant, "notice",
*strike_ids)``, an action's ``stable_id(tenant, "action", notice_id)``, a lapse's
``stable_id(tenant, "lapsed", notice_id)``.

Notices and actions carry ``metrics``: each strike's metric, period, observed, limit, excess and
unit. A throttle action carries ``until``: ``ts + throttle_days`` if that is set, else the end of
the period of the strike that triggered it; once the tenant clock reaches ``until`` a ``lifted``
record follows (``stable_id(tenant, "lifted", action_id)``).
"""

from __future__ import annotations

from fairuse.ledger.calendar import DAY_MS, Calendar
from fairuse.ledger.state import PendingNotice, Strike, TenantState
from fairuse.policy import Limits
from fairuse.records import Enforcement, Violation, stable_id


def on_violation(
    state: TenantState, violation: Violation, limits: Limits, calendar: Calendar
) -> list[Enforcement]:
    """The enforcement records a violation causes (none unless it is the first ``exceeded`` of
    its local day)."""
    if violation.status != "exceeded":
        return []
    ts = violation.ts
    day = calendar.day_of(ts)
    if day == state.strike_day:
        return []  # one strike per tenant per local day
    state.strike_day = day
    window_start = ts - limits.repeat_window_days * DAY_MS
    strikes = [strike for strike in state.strikes if strike.ts > window_start]
    strikes.append(
        Strike(
            violation.violation_id,
            ts,
            violation.metric,
            violation.period,
            violation.observed,
            violation.limit,
            violation.unit,
        )
    )
    state.strikes = strikes
    strike_ids = tuple(strike.violation_id for strike in strikes)
    tenant_id = state.tenant_id
    pending = state.pending
    if pending is not None:
        if ts < pending.effective_at:
            return []
        state.strikes = []
        state.pending = None
        action_id = stable_id(tenant_id, "action", pending.enforcement_id)
        until = None
        if pending.action == "throttle":
            if limits.throttle_days:
                until = ts + limits.throttle_days * DAY_MS
            else:
                until = calendar.period_end(violation.period)
            state.throttle = PendingNotice(
                action_id,
                until,
                pending.action,
                list(strike_ids),
                [strike.metric for strike in strikes],
                ts,
            )
        return [
            Enforcement(
                enforcement_id=action_id,
                tenant_id=tenant_id,
                kind="action",
                action=pending.action,  # type: ignore[arg-type]
                ts=ts,
                effective_at=ts,
                strikes=strike_ids,
                metrics=tuple(strike.excess() for strike in strikes),
                until=until,
            )
        ]
    if len(strikes) < limits.repeat_threshold:
        return []
    notice_id = stable_id(tenant_id, "notice", *strike_ids)
    effective_at = max(ts, state.clock_ms) + limits.notice_period_days * DAY_MS
    state.pending = PendingNotice(
        notice_id,
        effective_at,
        limits.enforcement_action,
        list(strike_ids),
        [strike.metric for strike in strikes],
        ts,
    )
    return [
        Enforcement(
            enforcement_id=notice_id,
            tenant_id=tenant_id,
            kind="notice",
            action=limits.enforcement_action,
            ts=ts,
            effective_at=effective_at,
            strikes=strike_ids,
            metrics=tuple(strike.excess() for strike in strikes),
        )
    ]


def lapse(state: TenantState, limits: Limits) -> list[Enforcement]:
    """The ``lapsed`` record of a pending notice with no strike within the repeat window after
    its ``effective_at``, once the tenant clock has passed that window (clearing its strikes)."""
    pending = state.pending
    if pending is None:
        return []
    ends = pending.effective_at + limits.repeat_window_days * DAY_MS
    if state.clock_ms <= ends:
        return []
    state.pending = None
    state.strikes = []
    tenant_id = state.tenant_id
    return [
        Enforcement(
            enforcement_id=stable_id(tenant_id, "lapsed", pending.enforcement_id),
            tenant_id=tenant_id,
            kind="lapsed",
            action=pending.action,  # type: ignore[arg-type]
            ts=state.clock_ms,
            effective_at=ends,
            strikes=(),
        )
    ]


def lift(state: TenantState) -> list[Enforcement]:
    """The ``lifted`` record of the throttle in force once the tenant clock reaches its
    ``until`` (clearing it)."""
    throttle = state.throttle
    if throttle is None or state.clock_ms < throttle.effective_at:
        return []
    state.throttle = None
    tenant_id = state.tenant_id
    return [
        Enforcement(
            enforcement_id=stable_id(tenant_id, "lifted", throttle.enforcement_id),
            tenant_id=tenant_id,
            kind="lifted",
            action=throttle.action,  # type: ignore[arg-type]
            ts=state.clock_ms,
            effective_at=throttle.effective_at,
            strikes=(),
        )
    ]


def throttled_until(state: TenantState, at_ms: int) -> int | None:
    """When the tenant's throttle ends (exclusive), if one is in force at ``at_ms``; else None.

    Pure: what a gateway reads to decide whether to throttle a request of the tenant.
    """
    throttle = state.throttle
    if throttle is None or at_ms >= throttle.effective_at:
        return None
    return throttle.effective_at


def prune_strikes(state: TenantState, now_ms: int, limits: Limits) -> None:
    """Forget strikes outside the repeat window ending at ``now_ms``."""
    window_start = now_ms - limits.repeat_window_days * DAY_MS
    state.strikes = [strike for strike in state.strikes if strike.ts > window_start]
