"""What each page shows, built from the worker's answers and the warehouse rows. Pure.

Every number keeps its raw value (for ``data-*`` attributes) beside its text in the tenant's
time zone and units, so tests compare the page with the API and the warehouse exactly.
"""

from __future__ import annotations

import calendar as month_calendar
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from markupsafe import Markup

from fairuse.events import METRICS
from fairuse.ledger.calendar import DAY_MS, calendar_for
from fairuse.policy import Limits
from fairuse.portal.charts import history_chart, standing_bar, status_of

LABELS = {
    "audio_hours": "Audio recording",
    "video_hours": "Video recording",
    "api_calls": "API calls today",
    "stored_calls_per_user": "Stored calls per user",
}
HISTORY_METRICS = ("audio_hours", "video_hours", "api_calls")
UNIT_TEXT = {"hours": "h", "calls": "calls", "calls_per_user": "calls per user"}


def amount(value: float, unit: str) -> str:
    """``value`` with its unit: ``12.50 h``, ``2,401 calls``, ``3.20 calls per user``."""
    if unit == "calls":
        return f"{round(value):,} calls"
    return f"{value:,.2f} {UNIT_TEXT.get(unit, unit)}"


def local_time(value: int | str | None, timezone: str) -> str:
    """An instant (epoch ms, or ISO / warehouse text in UTC) as local ``YYYY-MM-DD HH:MM TZ``."""
    if value is None or value == "":
        return "—"
    if isinstance(value, int):
        instant = datetime.fromtimestamp(value / 1000, UTC)
    else:
        instant = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z")


@dataclass(slots=True)
class MetricStanding:
    """One metric on the Standing page."""

    metric: str
    label: str
    period: str
    observed: float
    limit: float
    percent: float
    unit: str
    status: str
    bar: Markup
    observed_text: str
    limit_text: str
    warning_text: str
    left_text: str
    decision: dict[str, Any] | None = None


@dataclass(slots=True)
class Standing:
    """The Standing page: each metric this period, seats, throttles and pending notices."""

    at_text: str
    timezone: str
    seats: int
    policy_revision: str
    metrics: list[MetricStanding]
    actions: list[dict[str, str]]
    violations: list[dict[str, Any]] = field(default_factory=list)


def _left(metric: str, period: str, at_ms: int, timezone: str) -> str:
    end = calendar_for(timezone).period_end(period)
    if metric == "api_calls":
        return f"resets {local_time(end, timezone)}"
    days = math.ceil((end - at_ms) / DAY_MS)
    return f"{days} day{'s' if days != 1 else ''} left in {period}"


def _decision_view(decision: dict[str, Any], timezone: str) -> dict[str, str] | None:
    reason = decision.get("reason")
    if not reason and decision.get("action") == "none":
        return None
    reason = reason or {}
    return {
        "metric": str(decision.get("metric", "")),
        "kind": "Throttled" if decision.get("action") == "throttle" else "Advance notice",
        "text": str(reason.get("text") or ""),
        "effective": local_time(reason.get("effective_at"), timezone),
        "until": local_time(reason.get("until") or decision.get("until"), timezone),
    }


def standing(
    usage: dict[str, Any],
    decisions: dict[str, dict[str, Any]],
    violations: list[dict[str, Any]],
    limits: Limits,
) -> Standing:
    """The Standing page of ``usage`` (the worker's usage view) with its decisions."""
    timezone = usage["timezone"]
    metrics: list[MetricStanding] = []
    actions: list[dict[str, str]] = []
    for metric, view in usage["metrics"].items():
        observed, limit, unit = float(view["observed"]), float(view["limit"]), view["unit"]
        label = LABELS.get(metric, metric)
        status = status_of(observed, limit, limits.warning_ratio)
        decision = _decision_view(decisions[metric], timezone) if metric in decisions else None
        if decision:
            actions.append(decision)
        metrics.append(
            MetricStanding(
                metric=metric,
                label=label,
                period=view["period"],
                observed=observed,
                limit=limit,
                percent=float(view["percent"]),
                unit=unit,
                status=status,
                bar=standing_bar(
                    observed,
                    limit,
                    limits.warning_ratio,
                    f"{label}: {amount(observed, unit)} of {amount(limit, unit)}",
                ),
                observed_text=amount(observed, unit),
                limit_text=amount(limit, unit),
                warning_text=amount(limits.warning_ratio * limit, unit),
                left_text=_left(metric, view["period"], usage["at"], timezone),
                decision=decision,
            )
        )
    month = usage["month"]
    return Standing(
        at_text=local_time(usage["at"], timezone),
        timezone=timezone,
        seats=int(usage["seats"]),
        policy_revision=usage["policy_revision"],
        metrics=metrics,
        actions=actions,
        violations=[
            {**v, "observed_text": amount(float(v["observed"]), v["unit"]),
             "limit_text": amount(float(v["limit"]), v["unit"])}
            for v in violations
            if str(v.get("period", "")).startswith(month) and v.get("status") != "warning"
        ],
    )  # fmt: skip


@dataclass(slots=True)
class MetricHistory:
    """One metric's month on the History page."""

    metric: str
    label: str
    unit: str
    limit: float
    monthly: bool
    days: list[tuple[str, float, str]]  # (day, amount, amount text)
    total_text: str
    chart: Markup


def history(
    month: str,
    daily_rows: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    statement_rows: Sequence[dict[str, Any]] = (),
) -> list[MetricHistory]:
    """Daily usage per metric over ``month`` (warehouse ``usage_daily`` rows); limits from the
    worker's usage view when it is of the same month, else from the month's statements."""
    year, number = int(month[:4]), int(month[5:])
    length = month_calendar.monthrange(year, number)[1]
    live = dict(usage["metrics"]) if usage and usage.get("month") == month else {}
    for row in statement_rows:
        live.setdefault(row["metric"], {"limit": row["limit"]})
    result: list[MetricHistory] = []
    for metric in HISTORY_METRICS:
        unit = "calls" if metric == "api_calls" else "hours"
        amounts = [0.0] * length
        for row in daily_rows:
            if row["metric"] == metric:
                amounts[int(str(row["day"])[8:10]) - 1] += float(row["amount"])
        limit = float(live[metric]["limit"]) if metric in live else 0.0
        monthly = metric != "api_calls"
        label = LABELS[metric].replace(" today", "")
        result.append(
            MetricHistory(
                metric=metric,
                label=label,
                unit=unit,
                limit=limit,
                monthly=monthly,
                days=[
                    (f"{month}-{i + 1:02d}", value, amount(value, unit))
                    for i, value in enumerate(amounts)
                ],
                total_text=amount(sum(amounts), unit),
                chart=history_chart(
                    amounts,
                    limit,
                    monthly,
                    f"{label} per day in {month}"
                    + (", running total against the limit pace" if monthly else ""),
                    UNIT_TEXT[unit],
                ),
            )
        )
    return result


def statements(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Statement lines (``reports.statement_lines``, adjustments applied) with texts."""
    return [
        {
            **row,
            "label": LABELS.get(row["metric"], row["metric"]).replace(" today", ""),
            **{
                f"{name}_text": amount(float(row[name]), row["unit"])
                for name in ("observed", "limit", "excess", "announced")
            },
        }
        for row in rows
    ]


def top_users(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Top users rows with their hours as text."""
    return [{**row, "hours_text": amount(float(row["hours"]), "hours")} for row in rows]


def notices(
    steps: list[dict[str, Any]], deliveries: list[dict[str, Any]], timezone: str
) -> list[dict[str, Any]]:
    """Advance notices and actions (warehouse ``enforcement``) with their delivery per target
    (warehouse ``notifications``, by record id)."""
    by_record: dict[str, list[dict[str, Any]]] = {}
    for row in deliveries:
        by_record.setdefault(row["record_id"], []).append(
            {
                "channel": row["channel"],
                "target": row["target"],
                "state": row["state"],
                "delivered": local_time(row["delivered_at"], timezone),
                "attempts": row["attempts"],
            }
        )
    return [
        {
            "enforcement_id": step["enforcement_id"],
            "when": local_time(step["ts"], timezone),
            "kind": "Advance notice" if step["kind"] == "notice" else "Action",
            "action": step["action"],
            "effective": local_time(step["effective_at"], timezone),
            "strikes": step["strikes"],
            "deliveries": by_record.get(step["enforcement_id"], []),
        }
        for step in steps
    ]


PRIOR_STATES = {
    "pending": "pending: not yet in force",
    "in-force": "in force",
    "excuses-nothing": "recorded, but it excuses nothing",
    "replaced": "replaced by a later notice",
    "recorded": "recorded",
}


def _reflected(item: dict[str, Any], notice: dict[str, Any]) -> bool:
    """Whether ``notice`` (of the worker's usage view) is the prior notice ``item``: the same
    event, or for a notice kept without its event id, the same period and metrics."""
    if notice["event_id"] is not None:
        return bool(notice["event_id"] == item["event_id"])
    return (notice["starts"], notice["ends"], sorted(notice["metrics"])) == (
        item["starts"],
        item["ends"],
        sorted(item["metrics"]),
    )


def _prior_state(
    item: dict[str, Any], ledger: list[dict[str, Any]] | None, at_ms: int, stored: bool
) -> tuple[str, str]:
    """``(state, why)`` of a prior notice as the worker's ledger sees it (``ledger`` None: the
    worker did not say; ``stored``: the warehouse stands in for it)."""
    if stored:
        return "recorded", ""
    for notice in ledger or ():
        if _reflected(item, notice):
            return ("in-force", "") if notice["accepted"] else ("excuses-nothing", notice["why"])
    if any(n["notice_id"] == item.get("notice_id") for n in ledger or ()):
        return "replaced", ""
    if item["ends"] <= at_ms:  # over: the ledger forgets notices a week after they end
        return "recorded", ""
    return "pending", ""


def prior_notices(
    recorded: list[dict[str, Any]],
    sent: list[dict[str, Any]],
    ledger: list[dict[str, Any]] | None,
    at_ms: int,
    timezone: str,
    warehouse_reflects: bool = False,
) -> list[dict[str, Any]]:
    """The tenant's prior notices of high traffic, by the time they were given: those the
    warehouse stored (``recorded``: raw events), those the portal sent (``sent``: payloads) and
    those only the worker's ledger holds yet (``ledger``: the usage view's ``notices``, None if
    the worker did not answer). Each is ``pending`` until the ledger holds it, then ``in-force``
    (or ``excuses-nothing``, with why; ``replaced`` by a later notice of the same notice id);
    one that ended before ``at_ms`` (the tenant clock) and that the ledger no longer holds is
    ``recorded``: history. ``warehouse_reflects`` (a worker whose view lists no notices): a
    stored notice is ``recorded``."""
    items: dict[str, dict[str, Any]] = {}
    stored_ids = {row["event_id"] for row in recorded}
    for row in recorded:
        items[row["event_id"]] = {"metrics": METRICS, **orjson.loads(row["raw"])}
    for payload in sent:
        items.setdefault(payload["event_id"], payload)
    for notice in ledger or ():
        if not any(_reflected(item, notice) for item in items.values()):
            key = notice["event_id"] or notice["notice_id"]
            items[key] = {**notice, "event_id": key, "ts": notice["given"]}
    result = []
    for item in sorted(items.values(), key=lambda i: (i["ts"] or 0, i["event_id"])):
        stored = warehouse_reflects and item["event_id"] in stored_ids
        state, why = _prior_state(item, ledger, at_ms, stored)
        result.append(
            {
                "event_id": item["event_id"],
                "notice_id": item.get("notice_id", ""),
                "state": state,
                "state_text": PRIOR_STATES[state] + (f" ({why})" if why else ""),
                "given": local_time(item["ts"], timezone),
                "starts": local_time(item["starts"], timezone),
                "ends": local_time(item["ends"], timezone),
                "metrics": ", ".join(
                    LABELS.get(m, m).replace(" today", "") for m in item["metrics"]
                ),
                "reason": str(item.get("reason", "")),
            }
        )
    return result
