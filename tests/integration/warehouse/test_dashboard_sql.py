"""Every ClickHouse query of the Grafana dashboards runs on a warehouse holding a simulated month.

Panels and template variables of ``deploy/grafana/dashboards/*.json`` that use the ClickHouse
data source have their macros filled in as the grafana-clickhouse-datasource plugin fills them
(``$__timeFilter``, ``$__dateFilter``, ``$__timeInterval``, ``$__fromTime``, ``$__toTime``,
dashboard variables), then run read-only on the embedded store and must return rows.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from warehouse_support import store_batches

from fairuse.ledger import Ledger
from fairuse.policy import DEFAULT_POLICY
from fairuse.recorder.simulator import DAY_MS, FleetConfig, simulate
from fairuse.warehouse.batching import Batcher
from fairuse.warehouse.client import connect
from fairuse.warehouse.result import run_query
from fairuse.warehouse.rows import TOPIC_TABLES

DASHBOARDS = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "dashboards"
CLICKHOUSE = "grafana-clickhouse-datasource"
MONTH = FleetConfig(
    seed=3,
    tenants=6,
    duration_ms=30 * DAY_MS,
    heartbeat_s=3600,
    breaker_share=0.5,
    fault_rate=0.002,
)
INTERVAL_S = 3600  # what Grafana would pick for a month on a wide panel


def _queries() -> list[tuple[str, str]]:
    """(dashboard/panel title, SQL) of every ClickHouse panel target and variable."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                if target["datasource"]["type"] == CLICKHOUSE:
                    found.append((f"{path.stem}/{panel['title']}", target["rawSql"]))
        for variable in board["templating"]["list"]:
            if variable["datasource"]["type"] == CLICKHOUSE:
                found.append((f"{path.stem}/${variable['name']}", variable["query"]))
    return found


QUERIES = _queries()


def expand(sql: str, start: dt.datetime, end: dt.datetime, variables: dict[str, str]) -> str:
    """``sql`` with the plugin's macros and the dashboard variables substituted."""
    start_s, end_s = int(start.timestamp()), int(end.timestamp())
    macros: list[tuple[str, Any]] = [
        (r"\$__timeFilter\(([^)]+)\)",
         lambda m: f"{m[1]} >= toDateTime({start_s}) AND {m[1]} <= toDateTime({end_s})"),
        (r"\$__dateFilter\(([^)]+)\)",
         lambda m: f"{m[1]} >= toDate('{start.date()}') AND {m[1]} <= toDate('{end.date()}')"),
        (r"\$__timeInterval\(([^)]+)\)",
         lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {INTERVAL_S} second)"),
        (r"\$__fromTime\b", lambda m: f"toDateTime({start_s})"),
        (r"\$__toTime\b", lambda m: f"toDateTime({end_s})"),
        (r"\$\{(\w+)\}|\$(\w+)", lambda m: variables[m[1] or m[2]]),
    ]  # fmt: skip
    for pattern, replacement in macros:
        sql = re.sub(pattern, replacement, sql)
    assert "$" not in sql, sql
    return sql


@pytest.fixture(scope="module")
def month_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A simulated month of a small fleet: events, and every record the core made of them."""
    dsn = f"chdb://{tmp_path_factory.mktemp('dashboards') / 'warehouse'}"
    ledger = Ledger(DEFAULT_POLICY)
    batcher = Batcher(TOPIC_TABLES, max_rows=20_000, max_ms=10**9)
    offsets = dict.fromkeys(TOPIC_TABLES, 0)

    def add(topic: str, payload: bytes) -> None:
        batcher.add(topic, 0, offsets[topic], payload, 0.0)
        offsets[topic] += 1

    for i, emission in enumerate(simulate(MONTH)):
        add("events", emission.payload)
        for record in ledger.process(emission.payload, f"sim/0/{i}"):
            add(record.TOPIC.removeprefix("fairuse."), record.to_json())
    store_batches(dsn, batcher)
    assert offsets["violations"] and offsets["enforcement"], "the month must exercise the policy"
    return dsn


def test_the_dashboards_have_clickhouse_queries() -> None:
    titles = {title for title, _ in QUERIES}
    assert len(QUERIES) >= 8
    assert "fair-use/Tenants nearest their limits" in titles
    assert "fair-use/Announced usage" in titles


@pytest.mark.parametrize(("title", "sql"), QUERIES, ids=[title for title, _ in QUERIES])
def test_every_clickhouse_panel_query_runs_on_a_simulated_month(
    month_store: str, title: str, sql: str
) -> None:
    start = dt.datetime.fromtimestamp(MONTH.start_ms / 1000, dt.UTC)
    end = start + dt.timedelta(days=31)
    client = connect(month_store)
    try:
        tenant = run_query(client, "SELECT min(tenant_id) FROM usage_daily", {}).rows[0][0]
        result = run_query(
            client, expand(sql, start, end, {"tenant": tenant}), {}, settings={"readonly": 1}
        )
    finally:
        client.close()
    assert result.rows, f"{title} returned no rows on a simulated month"
