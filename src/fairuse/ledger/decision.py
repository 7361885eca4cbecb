"""The gateway's decision: may this tenant's traffic pass now, and if not, until when and why.

:func:`decide` answers for one tenant and metric at the tenant clock (the latest event time of
the tenant, never the wall clock). A throttle in force (rule 6's ``action`` with ``throttle``,
until its ``until``) stops the whole service of the tenant, so every metric's decision is
``allowed: false`` with ``action: "throttle"``; otherwise the decision is ``allowed: true`` and
``action: "none"``, also over the limit (the policy throttles only after an advance notice), and
a pending advance notice shows as the ``reason`` with ``kind: "notice"``. ``observed``,
``limit`` and ``unit`` are those of the usage endpoint; ``remaining = max(0, limit -
observed)``; ``resets_at`` is the end of the metric's current period (local day for api_calls,
local month otherwise).

:func:`ratelimit_headers` renders a decision body as the IETF httpapi RateLimit header fields
(draft-ietf-httpapi-ratelimit-headers-08), ``Retry-After`` while throttled and
``Cache-Control``; the worker and the gateway middleware both send them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fairuse.events import METRICS
from fairuse.ledger.calendar import calendar_for
from fairuse.ledger.escalation import throttled_until
from fairuse.ledger.state import PendingNotice, TenantState
from fairuse.ledger.view import metric_usage
from fairuse.policy import Policy

METRIC_NAMES = {
    "audio_hours": "audio hours",
    "video_hours": "video hours",
    "api_calls": "API calls",
    "stored_calls_per_user": "stored calls per user",
}


def iso_utc(ms: int) -> str:
    """``ms`` (epoch ms) as ISO 8601 in UTC, e.g. ``2026-03-14T00:00:00+00:00``."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="seconds" if ms % 1000 == 0 else "milliseconds")


def _what(notice: PendingNotice) -> str:
    """``"API calls over the limit on 3 days"`` (the metrics of the strikes behind it)."""
    names = list(dict.fromkeys(METRIC_NAMES.get(m, m) for m in notice.metrics)) or ["usage"]
    days = len(notice.violation_ids)
    over = f"{', '.join(names)} over the limit"
    return f"{over} on {days} day{'s' if days != 1 else ''}" if days else over


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _reason(state: TenantState, until: int | None) -> dict[str, Any] | None:
    """The throttle in force (``kind: "action"``), else the pending advance notice, else None."""
    throttle, pending = state.throttle, state.pending
    if throttle is not None and until is not None:
        what = _what(throttle)
        return {
            "text": f"{what[0].upper()}{what[1:]}; throttled until {_when(until)}",
            "kind": "action",
            "enforcement_id": throttle.enforcement_id,
            "violation_ids": list(throttle.violation_ids),
            "effective_at": iso_utc(throttle.issued_at) if throttle.issued_at else None,
            "until": iso_utc(until),
        }
    if pending is not None:
        return {
            "text": f"Advance notice: {_what(pending)}; {pending.action} from "
            f"{_when(pending.effective_at)} on the next excess",
            "kind": "notice",
            "enforcement_id": pending.enforcement_id,
            "violation_ids": list(pending.violation_ids),
            "effective_at": iso_utc(pending.effective_at),
            "until": None,
        }
    return None


def decide(state: TenantState, policy: Policy, metric: str) -> dict[str, Any]:
    """The decision for ``metric`` of ``state``'s tenant at its clock (the contract body of
    ``GET /v1/tenants/{id}/decision`` without ``cache_max_age_s``). Raises ValueError for a
    metric the policy does not know."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; one of {', '.join(METRICS)}")
    at_ms = state.clock_ms
    revision, limits = policy.limits_at(state.tenant_id, at_ms)
    calendar = calendar_for(limits.timezone)
    usage = metric_usage(state, policy, metric, calendar, calendar.day_of(at_ms))
    observed, limit = float(usage["observed"]), float(usage["limit"])
    resets_at = calendar.period_end(usage["period"])
    until = throttled_until(state, at_ms)
    return {
        "tenant_id": state.tenant_id,
        "metric": metric,
        "allowed": until is None,
        "action": "none" if until is None else "throttle",
        "reason": _reason(state, until),
        "observed": observed,
        "limit": limit,
        "remaining": max(0.0, limit - observed),
        "unit": usage["unit"],
        "period": usage["period"],
        "period_start_ms": calendar.period_start(usage["period"]),
        "resets_at": iso_utc(resets_at),
        "resets_at_ms": resets_at,
        "until": None if until is None else iso_utc(until),
        "until_ms": until,
        "policy_revision": revision.id,
        "as_of": iso_utc(at_ms),
        "as_of_ms": at_ms,
    }


def retry_after_s(decision: Mapping[str, Any]) -> int | None:
    """Whole seconds from ``as_of`` until the throttle ends (at least 1), or None if allowed."""
    until = decision.get("until_ms")
    if decision.get("allowed", True) or until is None:
        return None
    return max(1, math.ceil((until - decision["as_of_ms"]) / 1000))


def ratelimit_headers(decision: Mapping[str, Any]) -> dict[str, str]:
    """``RateLimit-Policy``, ``RateLimit``, ``Retry-After`` (throttled only) and
    ``Cache-Control`` of a decision body.

    The policy item is named after the metric: quota ``q`` = the limit (whole units, rounded
    down), window ``w`` = the period's length in seconds; ``r`` = the whole units remaining (0
    while throttled), ``t`` = seconds until the period resets, or until the throttle ends.
    """
    name = decision["metric"]
    window_s = (decision["resets_at_ms"] - decision["period_start_ms"]) // 1000
    retry = retry_after_s(decision)
    if retry is None:
        remaining = math.floor(decision["remaining"])
        reset_s = max(0, math.ceil((decision["resets_at_ms"] - decision["as_of_ms"]) / 1000))
    else:
        remaining, reset_s = 0, retry
    headers = {
        "RateLimit-Policy": f'"{name}";q={math.floor(decision["limit"])};w={window_s}',
        "RateLimit": f'"{name}";r={remaining};t={reset_s}',
        "Cache-Control": f"max-age={int(decision.get('cache_max_age_s', 0))}",
    }
    if retry is not None:
        headers["Retry-After"] = str(retry)
    return headers
