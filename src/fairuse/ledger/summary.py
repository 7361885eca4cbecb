"""Usage summary rows: one per tenant, metric and period seen.

Rows: ``tenant_id``, ``metric``, ``period`` (``YYYY-MM`` for audio_hours, video_hours and
stored_calls_per_user; ``YYYY-MM-DD`` for api_calls), ``observed`` (full precision, in the
metric's unit), ``limit`` (as of the period's latest check) and ``unit``; audio and video rows also
carry ``raw_hours`` (unweighted). Sorted by tenant, metric, period.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fairuse.ledger.metrics import HOUR_METRICS, MS_PER_HOUR, UNITS
from fairuse.ledger.state import TenantState

Archive = dict[tuple[str, str, str], list[Any]]


def archive_period(archive: Archive, tenant_id: str, metric: str, period: str, row: list) -> None:
    """Keep a period row that left the tenant state (merged if one was archived before)."""
    key = (tenant_id, metric, period)
    archive[key] = _merge(metric, archive.get(key), row)


def _merge(metric: str, old: list[Any] | None, new: list[Any]) -> list[Any]:
    if old is None or metric == "stored_calls_per_user":
        return list(new)
    if metric in HOUR_METRICS:
        return [old[0] + new[0], old[1] + new[1], new[2]]
    return [old[0] + new[0], new[1]]


def _row(tenant_id: str, metric: str, period: str, row: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"tenant_id": tenant_id, "metric": metric, "period": period}
    if metric in HOUR_METRICS:
        out["observed"] = row[0] / MS_PER_HOUR
        out["limit"] = row[2]
        out["unit"] = UNITS[metric]
        out["raw_hours"] = row[1] / MS_PER_HOUR
    else:
        out["observed"] = row[0]
        out["limit"] = row[1]
        out["unit"] = UNITS[metric]
    return out


def summary_rows(states: Iterable[TenantState], archive: Archive) -> list[dict[str, Any]]:
    """Summary rows of live states and archived periods, sorted."""
    merged: Archive = dict(archive)
    for state in states:
        for metric, rows in state.periods.items():
            for period, row in rows.items():
                key = (state.tenant_id, metric, period)
                merged[key] = _merge(metric, merged.get(key), row)
    return [_row(*key, merged[key]) for key in sorted(merged)]
