"""One query builder per analyst question, each returning ``(sql, params)``.

Values are bound server-side (``{name:Type}``), never formatted into the SQL; the SQL text of
each builder is constant and golden-tested. Correctness rules: ``usage``, ``violations``,
``enforcement``, ``statements`` and ``adjustments`` are read with FINAL (republished records
collapse by their identity), sums are re-aggregated at read time, and days are the tenant's
local days (accruals carry them; raw events are converted with the tenant's time zone).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Protocol

from fairuse.errors import WarehouseError
from fairuse.warehouse.result import QueryResult

Query = tuple[str, dict[str, Any]]

MS_PER_HOUR = 3_600_000
METRIC_NAMES = ("audio_hours", "video_hours", "api_calls", "stored_calls_per_user")


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    """First day of ``month`` (``YYYY-MM``) and of the month after; WarehouseError if malformed."""
    if not re.fullmatch(r"\d{4}-\d{2}", month):
        raise WarehouseError(f"month must be YYYY-MM, got {month!r}")
    year, number = int(month[:4]), int(month[5:])
    if not 1 <= number <= 12:
        raise WarehouseError(f"month must be YYYY-MM, got {month!r}")
    start = dt.date(year, number, 1)
    end = dt.date(year + number // 12, number % 12 + 1, 1)
    return start, end


_USAGE_DAILY = """\
SELECT day, metric, amount, unit, raw_hours, sessions, users
FROM
(
    SELECT day, metric,
           sum(weighted_ms) / 3600000 AS amount, 'hours' AS unit,
           sum(raw_ms) / 3600000 AS raw_hours,
           uniqExact(session_id) AS sessions, uniqExact(user_id) AS users
    FROM usage FINAL
    WHERE tenant_id = {tenant:String} AND day >= {start:Date} AND day < {end:Date}
    GROUP BY day, metric
    UNION ALL
    SELECT day, 'api_calls' AS metric,
           toFloat64(sum(calls)) AS amount, 'calls' AS unit,
           0 AS raw_hours, 0 AS sessions, 0 AS users
    FROM
    (
        SELECT toDate(any(ts), {timezone:String}) AS day, any(api_count) AS calls
        FROM events
        WHERE tenant_id = {tenant:String} AND type = 'api_call'
          AND ts >= toDateTime64({start:Date}, 3, 'UTC') - INTERVAL 1 DAY
          AND ts < toDateTime64({end:Date}, 3, 'UTC') + INTERVAL 1 DAY
        GROUP BY event_id
    )
    WHERE day >= {start:Date} AND day < {end:Date}
    GROUP BY day
)
ORDER BY day, metric"""


def usage_daily(tenant: str, month: str, timezone: str = "UTC") -> Query:
    """A tenant's usage per local day and metric in ``month`` (hours weighted; api calls)."""
    start, end = month_bounds(month)
    return _USAGE_DAILY, {"tenant": tenant, "start": start, "end": end, "timezone": timezone}


_USAGE_TOTALS = """\
SELECT metric, sum(weighted_ms) / 3600000 AS observed, 'hours' AS unit,
       sum(raw_ms) / 3600000 AS raw_hours,
       uniqExact(session_id) AS sessions, uniqExact(user_id) AS users, uniqExact(day) AS days
FROM usage FINAL
WHERE tenant_id = {tenant:String} AND day >= {start:Date} AND day < {end:Date}
GROUP BY metric
ORDER BY metric"""


def usage_totals(tenant: str, month: str) -> Query:
    """A tenant's recorded hours per metric in ``month`` (the ledger's monthly ``observed``)."""
    start, end = month_bounds(month)
    return _USAGE_TOTALS, {"tenant": tenant, "start": start, "end": end}


_OFFENDERS = """\
WITH
    usage_by_tenant AS
    (
        SELECT tenant_id, metric,
               sum(weighted_ms) / 3600000 AS hours, uniqExact(user_id) AS users
        FROM usage FINAL
        WHERE day >= {start:Date} AND day < {end:Date}
          AND ({metric:String} = '' OR metric = {metric:String})
        GROUP BY tenant_id, metric
    ),
    violations_by_tenant AS
    (
        SELECT tenant_id, metric,
               countIf(status = 'exceeded') AS exceeded, countIf(status = 'warning') AS warnings,
               countIf(status = 'excused') AS excused,
               max(observed / nullIf(`limit`, 0)) AS worst_ratio
        FROM violations FINAL
        WHERE startsWith(period, {month:String})
          AND ({metric:String} = '' OR metric = {metric:String})
        GROUP BY tenant_id, metric
    )
SELECT tenant_id, metric, v.exceeded AS exceeded, v.warnings AS warnings, v.excused AS excused,
       v.worst_ratio AS worst_ratio, u.hours AS hours, u.users AS users
FROM violations_by_tenant AS v
FULL OUTER JOIN usage_by_tenant AS u USING (tenant_id, metric)
ORDER BY exceeded DESC, worst_ratio DESC, hours DESC, tenant_id, metric
LIMIT {top:UInt32}"""


def offenders(month: str, metric: str | None = None, top: int = 10) -> Query:
    """Tenants ranked by exceeded violations, worst observed/limit, then hours in ``month``."""
    start, end = month_bounds(month)
    if metric is not None and metric not in METRIC_NAMES:
        raise WarehouseError(f"unknown metric {metric!r}; known: {', '.join(METRIC_NAMES)}")
    if top < 1:
        raise WarehouseError(f"--top must be at least 1, got {top}")
    params = {"month": month, "start": start, "end": end, "metric": metric or "", "top": top}
    return _OFFENDERS, params


_VIOLATIONS = """\
SELECT period, metric, status, observed, `limit`, unit, seats, policy_revision, ts, violation_id
FROM violations FINAL
WHERE tenant_id = {tenant:String} AND ({month:String} = '' OR startsWith(period, {month:String}))
ORDER BY ts, metric, period, status"""


def violations(tenant: str, month: str | None = None) -> Query:
    """A tenant's violations (of ``month`` if given), in event-time order."""
    if month is not None:
        month_bounds(month)
    return _VIOLATIONS, {"tenant": tenant, "month": month or ""}


_ENFORCEMENT = """\
SELECT ts, kind, action, effective_at, length(strikes) AS strikes, enforcement_id
FROM enforcement FINAL
WHERE tenant_id = {tenant:String}
ORDER BY ts, kind"""


def enforcement(tenant: str) -> Query:
    """A tenant's enforcement steps (advance notices and actions), in event-time order."""
    return _ENFORCEMENT, {"tenant": tenant}


_MONTH_ENFORCEMENT = """\
SELECT tenant_id, ts, kind, action, effective_at, length(strikes) AS strikes, enforcement_id
FROM enforcement FINAL
WHERE ts >= toDateTime64({start:Date}, 3, 'UTC') AND ts < toDateTime64({end:Date}, 3, 'UTC')
ORDER BY tenant_id, ts, kind"""


def month_enforcement(month: str) -> Query:
    """Every enforcement step (notice or action) taken in ``month`` (UTC), by tenant."""
    start, end = month_bounds(month)
    return _MONTH_ENFORCEMENT, {"start": start, "end": end}


_MONTH_VIOLATIONS = """\
SELECT tenant_id, metric, period, status, observed, `limit`, unit, ts
FROM violations FINAL
WHERE startsWith(period, {month:String})
ORDER BY tenant_id, metric, period, status"""


def month_violations(month: str) -> Query:
    """Every violation of ``month`` (monthly and daily periods), by tenant."""
    month_bounds(month)
    return _MONTH_VIOLATIONS, {"month": month}


_CONSISTENCY = """\
SELECT tenant_id, metric, raw.hours AS accrued_hours, agg.hours AS aggregate_hours,
       agg.hours - raw.hours AS difference_hours
FROM
(
    SELECT tenant_id, metric, sum(weighted_ms) / 3600000 AS hours
    FROM usage FINAL
    WHERE day >= {start:Date} AND day < {end:Date}
    GROUP BY tenant_id, metric
) AS raw
FULL OUTER JOIN
(
    SELECT tenant_id, metric, sum(weighted_ms) / 3600000 AS hours
    FROM usage_daily
    WHERE day >= {start:Date} AND day < {end:Date}
    GROUP BY tenant_id, metric
) AS agg USING (tenant_id, metric)
WHERE abs(agg.hours - raw.hours) > 0.000001
ORDER BY abs(difference_hours) DESC"""


def consistency(month: str) -> Query:
    """Tenants whose daily aggregate disagrees with the deduplicated accruals (expect none)."""
    start, end = month_bounds(month)
    return _CONSISTENCY, {"start": start, "end": end}


_NOTICES = """\
SELECT record_ts, kind, record_id, channel, target,
       multiIf(reached, 'delivered', dead, 'dead_lettered', cancelled, 'cancelled',
               'retrying') AS state,
       if(reached, first_delivered_at, NULL) AS delivered_at,
       attempts, first_attempt_at, last_status, last_error
FROM
(
    SELECT record_ts, kind, record_id, channel, target,
           count() AS attempts, min(attempted_at) AS first_attempt_at,
           countIf(outcome = 'delivered') > 0 AS reached,
           minIf(attempted_at, outcome = 'delivered') AS first_delivered_at,
           max(gave_up) AS dead, countIf(outcome = 'cancelled') > 0 AS cancelled,
           argMax(status, attempted_at) AS last_status, argMax(error, attempted_at) AS last_error
    FROM notifications FINAL
    WHERE tenant_id = {tenant:String}
      AND record_ts >= toDateTime64({start:Date}, 3, 'UTC')
      AND record_ts < toDateTime64({end:Date}, 3, 'UTC')
      AND ({kind:String} = '' OR kind = {kind:String} OR startsWith(kind, {family:String}))
    GROUP BY record_ts, kind, record_id, channel, target
)
ORDER BY record_ts, record_id, channel, target"""


def notices(tenant: str, month: str, kind: str | None = None) -> Query:
    """Proof of notice: each record of ``tenant`` from ``month`` (UTC, by record time) per target
    with its state (``delivered``, ``dead_lettered``, ``cancelled``, ``retrying``), when it was
    first delivered, and its attempts; ``kind`` narrows to a kind or family (``enforcement``)."""
    start, end = month_bounds(month)
    params = {"tenant": tenant, "start": start, "end": end, "kind": kind or ""}
    params["family"] = f"{kind}." if kind else ""
    return _NOTICES, params


_STATEMENTS = """\
SELECT tenant_id, metric, period, statement_id,
       sum(observed) AS observed, maxIf(`limit`, line = 'statement') AS `limit`,
       maxIf(seats, line = 'statement') AS seats, sum(excess) AS excess, any(unit) AS unit,
       sum(announced) AS announced, countIf(line = 'adjustment') AS adjustments,
       maxIf(policy_revision, line = 'statement') AS policy_revision,
       maxIf(closed_at, line = 'statement') AS closed_at
FROM
(
    SELECT 'statement' AS line, tenant_id, metric, period, statement_id, observed, `limit`,
           seats, excess, unit, announced, policy_revision, closed_at
    FROM statements FINAL
    WHERE startsWith(period, {month:String})
      AND ({tenant:String} = '' OR tenant_id = {tenant:String})
    UNION ALL
    SELECT 'adjustment' AS line, tenant_id, metric, period, statement_id,
           delta_observed AS observed, 0 AS `limit`, 0 AS seats, delta_excess AS excess,
           '' AS unit, delta_announced AS announced, '' AS policy_revision,
           toDateTime64(0, 3, 'UTC') AS closed_at
    FROM adjustments FINAL
    WHERE startsWith(period, {month:String})
      AND ({tenant:String} = '' OR tenant_id = {tenant:String})
)
GROUP BY tenant_id, metric, period, statement_id
HAVING countIf(line = 'statement') > 0
ORDER BY tenant_id, metric, period"""


def statements(month: str, tenant: str | None = None) -> Query:
    """One line per tenant, metric and period of ``month`` (the month itself, or its days for
    api_calls) with the period's adjustments applied: the figures to invoice."""
    month_bounds(month)
    return _STATEMENTS, {"month": month, "tenant": tenant or ""}


class QueryRunner(Protocol):
    """Anything that runs a bound query: :class:`fairuse.warehouse.store.Reader`."""

    def query(self, sql: str, params: dict[str, Any] | None = None) -> QueryResult: ...


def statement_lines(client: QueryRunner, month: str, tenant: str | None = None) -> list[dict]:
    """The statement lines of ``month`` (of ``tenant`` only, if given) as dicts: ``tenant_id``,
    ``metric``, ``period``, ``statement_id``, final ``observed``, ``limit``, ``seats``,
    ``excess``, ``unit``, ``announced``, ``adjustments`` (how many were applied),
    ``policy_revision`` and ``closed_at``."""
    return client.query(*statements(month, tenant)).dicts()


BUILDERS = {
    "usage_daily": usage_daily,
    "usage_totals": usage_totals,
    "offenders": offenders,
    "violations": violations,
    "enforcement": enforcement,
    "month_violations": month_violations,
    "month_enforcement": month_enforcement,
    "consistency": consistency,
    "notices": notices,
    "statements": statements,
}

_SEATS = """\
SELECT count() AS seats
FROM
(
    SELECT user_id, argMax(type, ts) AS last_change
    FROM events
    WHERE tenant_id = {tenant:String} AND type IN ('user_activated', 'user_deactivated')
      AND ts < toDateTime64({end:Date}, 3, 'UTC')
    GROUP BY user_id
)
WHERE last_change = 'user_activated'"""


def seats(tenant: str, month: str) -> Query:
    """Named users active at the end of ``month`` (from the raw activation events)."""
    _, end = month_bounds(month)
    return _SEATS, {"tenant": tenant, "end": end}


_LATEST_MONTH = """\
SELECT formatDateTime(greatest(
           (SELECT max(day) FROM usage),
           (SELECT toDate(max(ts)) FROM violations)), '%Y-%m') AS month"""


def latest_month() -> Query:
    """The month of the latest accrual or violation (``1970-01`` on an empty store)."""
    return _LATEST_MONTH, {}


BUILDERS["seats"] = seats
BUILDERS["latest_month"] = latest_month

_TOP_USERS = """\
SELECT user_id, metric, sum(weighted_ms) / 3600000 AS hours, uniqExact(day) AS active_days
FROM usage_daily_by_user
WHERE tenant_id = {tenant:String} AND day >= {start:Date} AND day < {end:Date}
GROUP BY user_id, metric
ORDER BY hours DESC, user_id, metric
LIMIT {top:UInt32}"""


def top_users(tenant: str, month: str, top: int = 10) -> Query:
    """A tenant's users with the most recorded hours in ``month`` (pooled allowances)."""
    start, end = month_bounds(month)
    return _TOP_USERS, {"tenant": tenant, "start": start, "end": end, "top": top}


_USAGE_NOTICES = """\
SELECT event_id, ts, raw
FROM events
WHERE tenant_id = {tenant:String} AND type = 'usage_notice'
ORDER BY ts, event_id
LIMIT 1 BY event_id"""


def usage_notices(tenant: str) -> Query:
    """The prior notices of high traffic a tenant gave (raw events, one per event id)."""
    return _USAGE_NOTICES, {"tenant": tenant}


_TENANTS = "SELECT DISTINCT tenant_id FROM events ORDER BY tenant_id"


def tenants() -> Query:
    """Every tenant the warehouse has events of."""
    return _TENANTS, {}


BUILDERS["top_users"] = top_users
BUILDERS["usage_notices"] = usage_notices
BUILDERS["tenants"] = tenants
