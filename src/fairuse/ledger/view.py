"""The live usage of one tenant at an event-time instant (for the HTTP usage endpoint)."""

from __future__ import annotations

from typing import Any

from fairuse.events import METRICS
from fairuse.ledger.calendar import Calendar, calendar_for
from fairuse.ledger.metrics import (
    HOUR_METRICS,
    MS_PER_HOUR,
    UNITS,
    average_seats,
    limit_of,
    seats,
)
from fairuse.ledger.sessions import is_open
from fairuse.ledger.state import CallsRow, HoursRow, TenantState
from fairuse.policy import Policy


def usage_view(state: TenantState, policy: Policy, at_ms: int) -> dict[str, Any]:
    """Current local day and month usage of ``state``'s tenant at ``at_ms``.

    ``{"tenant_id", "at", "day", "month", "timezone", "policy_revision", "seats",
    "open_sessions": [ids, sorted], "metrics": {metric: {"period", "observed", "limit",
    "percent", "unit"}}, "notices": [...]}``; api_calls is per day, the other metrics per month;
    ``notices`` are the prior notices the ledger holds (:func:`notices_view`). Limits use the
    revision in force at the start of each period (as the ledger judges it; ``policy_revision``
    is the one in force at ``at_ms``); audio and video limits use the month's seats averaged up
    to the tenant clock (``seats`` is the named active users now); ``percent`` = 100 * observed /
    limit.
    """
    revision, limits = policy.limits_at(state.tenant_id, at_ms)
    calendar = calendar_for(limits.timezone)
    day = calendar.day_of(at_ms)
    seat_count = seats(state)
    view_metrics = {
        metric: metric_usage(state, policy, metric, calendar, day) for metric in METRICS
    }
    expiry_ms = limits.session_expiry_s * 1000
    return {
        "tenant_id": state.tenant_id,
        "at": at_ms,
        "day": day,
        "month": day[:7],
        "timezone": limits.timezone,
        "policy_revision": revision.id,
        "seats": seat_count,
        "open_sessions": sorted(
            sid for sid, s in state.sessions.items() if is_open(s, at_ms, expiry_ms)
        ),
        "metrics": view_metrics,
        "notices": notices_view(state),
    }


def notices_view(state: TenantState) -> list[dict[str, Any]]:
    """The prior notices of high traffic the ledger holds, by start: ``{"notice_id",
    "event_id", "given", "starts", "ends", "metrics", "accepted", "why"}`` (epoch ms;
    ``event_id``/``given`` null for notices kept before they were remembered). ``accepted``:
    within the policy's bounds, so it excuses traffic in its period; otherwise ``why`` says
    which bound it broke (a repeated ``notice_id`` shows only the latest notice)."""
    return [
        {
            "notice_id": notice_id,
            "event_id": n.event_id or None,
            "given": n.given or None,
            "starts": n.starts,
            "ends": n.ends,
            "metrics": list(n.metrics),
            "accepted": not n.why,
            "why": n.why,
        }
        for notice_id, n in sorted(state.notices.items(), key=lambda kv: (kv[1].starts, kv[0]))
    ]


def metric_usage(
    state: TenantState, policy: Policy, metric: str, calendar: Calendar, day: str
) -> dict[str, Any]:
    """``{"period", "observed", "limit", "percent", "unit"}`` of ``metric`` in the period holding
    the local ``day`` (the day for api_calls, its month otherwise), as :func:`usage_view` shows
    it."""
    month = day[:7]
    period = day if metric == "api_calls" else month
    row = state.periods.get(metric, {}).get(period)
    observed: float | int
    if metric in HOUR_METRICS:
        observed = (row.weighted_ms - row.announced) / MS_PER_HOUR if type(row) is HoursRow else 0.0
    elif metric == "api_calls":
        observed = row.calls if type(row) is CallsRow else 0
    else:
        observed = len(state.calls) / seats(state)
    averaged = average_seats(state, calendar, month) if metric in HOUR_METRICS else seats(state)
    _, period_limits = policy.limits_at(state.tenant_id, calendar.period_start(period))
    limit = limit_of(metric, period_limits, averaged)
    return {
        "period": period,
        "observed": observed,
        "limit": limit,
        "percent": 100.0 * observed / limit if limit else 0.0,
        "unit": UNITS[metric],
    }
