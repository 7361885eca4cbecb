"""Rule 5: compare a metric with its limit after every event that changes it.

Reaching ``warning_ratio x limit`` emits ``warning``; going above the limit emits ``exceeded``, or
``excused`` instead when the triggering event's time lies inside a usage notice for that metric
that arrived earlier. Each status at most once per tenant, metric and period (a jump past both
thresholds emits both, warning first). An excused period can still become exceeded by usage
outside the notice; once exceeded, it is never excused afterwards.
"""

from __future__ import annotations

from fairuse.ledger.metrics import HOUR_METRICS, UNITS
from fairuse.ledger.notices import covers
from fairuse.ledger.state import USER_SEP, TenantState
from fairuse.records import Status, Violation, stable_id


def violation_id(tenant_id: str, metric: str, period: str, status: str) -> str:
    """The deterministic id of a violation."""
    return stable_id(tenant_id, metric, period, status)


def check(
    state: TenantState,
    metric: str,
    period: str,
    observed: float,
    limit: float,
    *,
    seats: float,
    warning_ratio: float,
    revision_id: str,
    ts: int,
) -> list[Violation]:
    """The statuses newly reached by ``observed`` (in order), marked as emitted in ``state``.

    ``metric`` may be a per-user key ``{metric}@{user_id}``: its violations name the metric and
    carry the ``user_id``."""
    if observed < warning_ratio * limit:
        return []
    base, _, user_id = metric.partition(USER_SEP)
    marks = state.marks
    statuses: list[Status] = []
    if not marks.has(metric, period, "warning"):
        statuses.append("warning")
    if observed > limit and not marks.has(metric, period, "exceeded"):
        excusable = base not in HOUR_METRICS  # announced hours are left out of observed
        status: Status = "excused" if excusable and covers(state, metric, ts) else "exceeded"
        if not marks.has(metric, period, status):
            statuses.append(status)
    out = []
    for status in statuses:
        marks.add(metric, period, status)
        out.append(
            Violation(
                violation_id=violation_id(state.tenant_id, metric, period, status),
                tenant_id=state.tenant_id,
                metric=base,  # type: ignore[arg-type]
                period=period,
                status=status,
                observed=observed,
                limit=limit,
                unit=UNITS[base],
                seats=seats,
                policy_revision=revision_id,
                ts=ts,
                user_id=user_id,
            )
        )
    return out
