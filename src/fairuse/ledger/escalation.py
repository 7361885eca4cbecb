"""Rule 6: the escalation ladder, strike -> notice -> action.

Each ``exceeded`` violation (not ``excused``) is a strike. Strikes count within the trailing repeat
window ``(ts - repeat_window_days, ts]``. When they reach ``repeat_threshold`` and no notice is
pending, an enforcement ``notice`` is emitted with ``effective_at = ts + notice_period_days`` and
the policy's action. With a notice pending, the next strike at or after ``effective_at`` emits the
enforcement ``action`` (the action the notice announced), and the strikes and the notice are
cleared. Ids: a notice's is ``stable_id(tenant, "notice", *strike_ids)``, an action's is
``stable_id(tenant, "action", notice_id)``.
"""

from __future__ import annotations

from fairuse.ledger.calendar import DAY_MS
from fairuse.ledger.state import PendingNotice, Strike, TenantState
from fairuse.policy import Limits
from fairuse.records import Enforcement, Violation, stable_id


def on_violation(state: TenantState, violation: Violation, limits: Limits) -> list[Enforcement]:
    """The enforcement records a violation causes (none unless it is ``exceeded``)."""
    if violation.status != "exceeded":
        return []
    ts = violation.ts
    window_start = ts - limits.repeat_window_days * DAY_MS
    strikes = [strike for strike in state.strikes if strike.ts > window_start]
    strikes.append(Strike(violation.violation_id, ts))
    state.strikes = strikes
    strike_ids = tuple(strike.violation_id for strike in strikes)
    tenant_id = state.tenant_id
    pending = state.pending
    if pending is not None:
        if ts < pending.effective_at:
            return []
        state.strikes = []
        state.pending = None
        return [
            Enforcement(
                enforcement_id=stable_id(tenant_id, "action", pending.enforcement_id),
                tenant_id=tenant_id,
                kind="action",
                action=pending.action,  # type: ignore[arg-type]
                ts=ts,
                effective_at=ts,
                strikes=strike_ids,
            )
        ]
    if len(strikes) < limits.repeat_threshold:
        return []
    notice_id = stable_id(tenant_id, "notice", *strike_ids)
    effective_at = ts + limits.notice_period_days * DAY_MS
    state.pending = PendingNotice(notice_id, effective_at, limits.enforcement_action)
    return [
        Enforcement(
            enforcement_id=notice_id,
            tenant_id=tenant_id,
            kind="notice",
            action=limits.enforcement_action,
            ts=ts,
            effective_at=effective_at,
            strikes=strike_ids,
        )
    ]


def prune_strikes(state: TenantState, now_ms: int, limits: Limits) -> None:
    """Forget strikes outside the repeat window ending at ``now_ms``."""
    window_start = now_ms - limits.repeat_window_days * DAY_MS
    state.strikes = [strike for strike in state.strikes if strike.ts > window_start]
