"""Every SQL block of docs/sql-cookbook.md runs on the schema, and the builders' SQL is in it."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from fairuse.warehouse import reports
from fairuse.warehouse.client import connect
from fairuse.warehouse.migrate import migrate
from fairuse.warehouse.result import run_query

COOKBOOK = Path(__file__).resolve().parents[3] / "docs" / "sql-cookbook.md"
VALUES = {
    "tenant": "acme", "start": dt.date(2026, 11, 1), "end": dt.date(2026, 12, 1),
    "timezone": "Europe/Berlin", "month": "2026-11", "metric": "", "top": 10,
    "day": dt.date(2026, 11, 3), "since": dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    "kind": "", "family": "",
}  # fmt: skip


def _blocks() -> list[str]:
    return re.findall(r"```sql\n(.*?)\n```", COOKBOOK.read_text(encoding="utf-8"), re.S)


def test_cookbook_holds_every_builder_sql() -> None:
    blocks = _blocks()
    month_only = {"offenders", "consistency", "month_violations", "month_enforcement", "statements"}
    for name, builder in reports.BUILDERS.items():
        if name == "latest_month":
            continue
        args = ("2026-11",) if name in month_only else ("acme", "2026-11")
        args = ("acme",) if name in ("enforcement", "usage_notices") else args
        args = () if name == "tenants" else args
        assert builder(*args)[0] in blocks, name


def test_every_cookbook_query_runs_read_only(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'warehouse'}")
    try:
        migrate(client, events_ttl_days=0)
        blocks = _blocks()
        assert len(blocks) >= 10
        for sql in blocks:
            names = set(re.findall(r"\{(\w+):", sql))
            run_query(client, sql, {n: VALUES[n] for n in names}, settings={"readonly": 1})
    finally:
        client.close()
