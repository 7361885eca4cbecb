"""The analyst commands end to end on an embedded store (formats, plot, errors as one line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fairuse.cli import main
from fairuse.records import UsageAccrual, Violation
from fairuse.warehouse.batching import Batcher
from fairuse.warehouse.client import connect
from fairuse.warehouse.migrate import migrate
from fairuse.warehouse.rows import TABLE_COLUMNS, columns_of


def _fill(store: Path) -> None:
    batcher = Batcher({"u": "usage", "v": "violations"}, max_rows=1000, max_ms=10**9)
    for i in range(6):
        accrual = UsageAccrual(
            tenant_id="acme", metric="audio_hours", day=f"2026-11-0{1 + i % 3}",
            weighted_ms=3_600_000.0, raw_ms=3_600_000, session_id=f"s{i}", user_id=f"u{i % 2}",
            event_id=f"e{i}",
        )  # fmt: skip
        batcher.add("u", 0, i, accrual.to_json(), 0.0)
    violation = Violation(
        violation_id="v1", tenant_id="acme", metric="audio_hours", period="2026-11",
        status="warning", observed=6.0, limit=7.0, unit="hours", seats=1, policy_revision="r",
        ts=1_793_577_600_000,
    )  # fmt: skip
    batcher.add("v", 0, 0, violation.to_json(), 0.0)
    client = connect(f"chdb://{store}")
    try:
        migrate(client, events_ttl_days=0)
        for batch in batcher.due(0.0, drain=True):
            for table, rows in batch.rows.items():
                client.insert(
                    table, columns_of(rows), column_names=list(TABLE_COLUMNS[table]),
                    column_oriented=True, settings={"async_insert": 0},
                )  # fmt: skip
    finally:
        client.close()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FAIRUSE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FAIRUSE_WAREHOUSE_DSN", raising=False)
    monkeypatch.delenv("FAIRUSE_POLICY_FILE", raising=False)
    _fill(tmp_path / "warehouse")
    return tmp_path / "warehouse"


def test_report_usage_in_every_format_and_as_a_plot(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "usage", "--tenant", "acme", "--month", "2026-11"]) == 0
    table = capsys.readouterr().out
    assert "Usage of acme in 2026-11 per local day" in table and "audio_hours" in table
    assert (
        main(["report", "usage", "--tenant", "acme", "--month", "2026-11", "--format", "json"]) == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [(r["day"], r["amount"]) for r in rows] == [
        ("2026-11-01", 2.0), ("2026-11-02", 2.0), ("2026-11-03", 2.0),
    ]  # fmt: skip
    assert (
        main(["report", "usage", "--tenant", "acme", "--month", "2026-11", "--format", "csv"]) == 0
    )
    assert (
        capsys.readouterr().out.splitlines()[0] == "day,metric,amount,unit,raw_hours,sessions,users"
    )
    plot = tmp_path / "usage.png"
    args = ["report", "usage", "--tenant", "acme", "--month", "2026-11", "--plot", str(plot)]
    assert main(args) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_offenders_violations_and_sql(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "summary", "--tenant", "acme"]) == 0  # month from the latest data
    out = capsys.readouterr().out
    assert "Top 10 offenders in 2026-11" in out and "Totals of acme in 2026-11" in out
    assert "Enforcement in 2026-11" in out
    assert main(["report", "offenders", "--month", "2026-11", "--format", "json"]) == 0
    (offender,) = json.loads(capsys.readouterr().out)
    assert (offender["tenant_id"], offender["warnings"], offender["hours"]) == ("acme", 1, 6.0)
    assert main(["report", "violations", "--tenant", "acme"]) == 0
    assert "warning" in capsys.readouterr().out
    query = "SELECT count() AS n FROM usage FINAL WHERE tenant_id = {t:String}"
    assert main(["sql", query, "--param", "t=acme", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["n", "6"]


def test_errors_are_one_line(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "DROP TABLE usage"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert main(["report", "usage", "--tenant", "acme", "--month", "11/2026"]) == 2
    assert "YYYY-MM" in capsys.readouterr().err
    assert main(["sql", "SELECT nope FROM usage"]) == 2
    assert capsys.readouterr().err.startswith("fairuse sql: query failed:")
