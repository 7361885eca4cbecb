"""Golden tests: the exact SQL of every report builder and of the rendered schema.

Regenerate after an intended change with ``FAIRUSE_UPDATE_GOLDEN=1 pytest tests/unit/warehouse``
and review the diff.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from fairuse.errors import WarehouseError
from fairuse.warehouse import reports
from fairuse.warehouse.schema import render_all

GOLDEN = Path(__file__).parent / "golden"

CASES = {
    "usage_daily": (
        reports.usage_daily("acme", "2026-12", "Europe/Berlin"),
        {
            "tenant": "acme", "start": dt.date(2026, 12, 1), "end": dt.date(2027, 1, 1),
            "timezone": "Europe/Berlin",
        },
    ),
    "usage_totals": (
        reports.usage_totals("acme", "2026-02"),
        {"tenant": "acme", "start": dt.date(2026, 2, 1), "end": dt.date(2026, 3, 1)},
    ),
    "offenders": (
        reports.offenders("2026-11", "video_hours", 5),
        {
            "month": "2026-11", "start": dt.date(2026, 11, 1), "end": dt.date(2026, 12, 1),
            "metric": "video_hours", "top": 5,
        },
    ),
    "violations": (reports.violations("acme"), {"tenant": "acme", "month": ""}),
    "enforcement": (reports.enforcement("acme"), {"tenant": "acme"}),
    "month_violations": (reports.month_violations("2026-11"), {"month": "2026-11"}),
    "month_enforcement": (
        reports.month_enforcement("2026-11"),
        {"start": dt.date(2026, 11, 1), "end": dt.date(2026, 12, 1)},
    ),
    "consistency": (
        reports.consistency("2026-11"),
        {"start": dt.date(2026, 11, 1), "end": dt.date(2026, 12, 1)},
    ),
    "seats": (reports.seats("acme", "2026-11"), {"tenant": "acme", "end": dt.date(2026, 12, 1)}),
    "latest_month": (reports.latest_month(), {}),
    "notices": (
        reports.notices("acme", "2026-11", "enforcement"),
        {
            "tenant": "acme", "start": dt.date(2026, 11, 1), "end": dt.date(2026, 12, 1),
            "kind": "enforcement", "family": "enforcement.",
        },
    ),
    "top_users": (
        reports.top_users("acme", "2026-11", 5),
        {"tenant": "acme", "start": dt.date(2026, 11, 1), "end": dt.date(2026, 12, 1), "top": 5},
    ),
    "usage_notices": (reports.usage_notices("acme"), {"tenant": "acme"}),
    "tenants": (reports.tenants(), {}),
    "statements": (
        reports.statements("2026-11", "acme"), {"month": "2026-11", "tenant": "acme"}
    ),
}  # fmt: skip


def _golden(name: str, text: str) -> str:
    path = GOLDEN / name
    if os.environ.get("FAIRUSE_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(CASES))
def test_report_builder_sql_and_params(name: str) -> None:
    (sql, params), expected_params = CASES[name]
    assert sql == _golden(f"{name}.sql", sql)
    assert params == expected_params


def test_every_builder_has_a_golden_case() -> None:
    assert set(reports.BUILDERS) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_user_values_never_reach_the_sql_text(name: str) -> None:
    (sql, params), _ = CASES[name]
    for value in params.values():
        if isinstance(value, str) and value:
            assert value not in sql


def test_builders_reject_bad_input() -> None:
    with pytest.raises(WarehouseError, match="YYYY-MM"):
        reports.usage_daily("t", "2026-1")
    with pytest.raises(WarehouseError, match="unknown metric"):
        reports.offenders("2026-11", "minutes")
    with pytest.raises(WarehouseError, match="at least 1"):
        reports.offenders("2026-11", top=0)
    assert reports.month_bounds("2026-12") == (dt.date(2026, 12, 1), dt.date(2027, 1, 1))


def test_schema_single_node_golden() -> None:
    text = render_all(events_ttl_days=400)
    assert text == _golden("schema_single.sql", text)


def test_schema_cluster_golden() -> None:
    text = render_all(cluster="prod", events_ttl_days=400)
    assert text == _golden("schema_cluster.sql", text)
