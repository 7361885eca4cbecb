"""Usage summary rows: one per tenant, metric and period seen.

Rows: ``tenant_id``, ``metric``, ``period`` (``YYYY-MM`` for audio_hours, video_hours and
stored_calls_per_user; ``YYYY-MM-DD`` for api_calls), ``observed`` (full precision, in the
metric's unit), ``limit`` (as of the period's latest check) and ``unit``; audio and video rows also
carry ``raw_hours`` (unweighted) and ``late_after_expiry`` (heartbeats and stops of sessions
already ended by a gap longer than the session expiry, counted in the month of the late event).
Audio and video ``observed`` is the total compared with the limit: usage inside prior notices
is left out of it and reported as ``announced`` (hours). Rows of one user's own hours
(per-user allowance) also carry ``user_id``. Sorted by tenant, metric (a user's rows after the
pooled one), period.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fairuse.ledger.metrics import MS_PER_HOUR, UNITS
from fairuse.ledger.state import USER_SEP, CallsRow, HoursRow, Row, TenantState

Archive = dict[tuple[str, str, str], Row]


def archive_period(archive: Archive, tenant_id: str, metric: str, period: str, row: Row) -> None:
    """Keep a period row that left the tenant state (merged if one was archived before)."""
    key = (tenant_id, metric, period)
    archive[key] = _merge(archive.get(key), row)


def _merge(old: Row | None, new: Row) -> Row:
    if type(new) is HoursRow and type(old) is HoursRow:
        return HoursRow(
            old.weighted_ms + new.weighted_ms,
            old.raw_ms + new.raw_ms,
            new.limit,
            old.late + new.late,
            old.announced + new.announced,
        )
    if type(new) is CallsRow and type(old) is CallsRow:
        return CallsRow(old.calls + new.calls, new.limit)
    return type(new).from_list(new.to_list())  # type: ignore[return-value]


def _row(tenant_id: str, key: str, period: str, row: Row) -> dict[str, Any]:
    metric, _, user_id = key.partition(USER_SEP)
    out: dict[str, Any] = {"tenant_id": tenant_id, "metric": metric, "period": period}
    if user_id:
        out["user_id"] = user_id
    if type(row) is HoursRow:
        out["observed"] = (row.weighted_ms - row.announced) / MS_PER_HOUR
        out["limit"] = row.limit
        out["unit"] = UNITS[metric]
        out["raw_hours"] = row.raw_ms / MS_PER_HOUR
        out["late_after_expiry"] = row.late
        out["announced"] = row.announced / MS_PER_HOUR
    else:
        out["observed"] = row.calls if type(row) is CallsRow else row.observed  # type: ignore[union-attr]
        out["limit"] = row.limit
        out["unit"] = UNITS[metric]
    return out


def summary_rows(states: Iterable[TenantState], archive: Archive) -> list[dict[str, Any]]:
    """Summary rows of live states and archived periods, sorted."""
    merged: Archive = dict(archive)
    for state in states:
        for metric, rows in state.periods.items():
            for period, row in rows.items():
                key = (state.tenant_id, metric, period)
                merged[key] = _merge(merged.get(key), row)
    return [_row(*key, merged[key]) for key in sorted(merged)]
