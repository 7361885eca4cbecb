"""Statements and adjustments in the warehouse: the sink's rows, FINAL over republished records,
``statement_lines`` with the adjustments applied, and ``fairuse report statements``."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from warehouse_support import store_batches

from fairuse.cli import main
from fairuse.events import TS_MIN_MS
from fairuse.ledger import Ledger
from fairuse.policy import Limits, Policy, Revision
from fairuse.records import Adjustment, Statement
from fairuse.warehouse.batching import Batcher
from fairuse.warehouse.reports import statement_lines
from fairuse.warehouse.store import Reader

MARCH_5 = 1_772_668_800_000  # 2026-03-05T00:00:00Z
HOUR = 3_600_000
DAY = 24 * HOUR


def _records() -> tuple[list[Statement | Adjustment], list[dict]]:
    """Two tenants' March: api calls of 03-05 closed then adjusted twice (acme), audio hours of
    the month closed then adjusted once (acme), one closed day of globex; and the ledger's
    summary of everything."""
    limits = Limits(api_calls_per_day=10, session_expiry_s=10 * DAY)  # no heartbeats needed
    policy = Policy([Revision("r1", TS_MIN_MS, limits)])
    ledger = Ledger(policy)
    out: list[Statement | Adjustment] = []
    n = 0

    def send(tenant: str, kind: str, ts: int, **fields: object) -> None:
        nonlocal n
        n += 1
        event = {"type": kind, "event_id": f"e{n}", "tenant_id": tenant, "ts": ts, **fields}
        for record in ledger.process(orjson.dumps(event), f"test:{n}"):
            if isinstance(record, Statement | Adjustment):
                out.append(record)

    send("acme", "api_call", MARCH_5 + 10 * HOUR, count=8)
    send("acme", "session_started", MARCH_5, session_id="s1", user_id="u1", media="audio")
    send("acme", "session_stopped", MARCH_5 + 2 * HOUR, session_id="s1")
    send("globex", "api_call", MARCH_5 + HOUR, count=30)
    send("globex", "api_call", MARCH_5 + 3 * DAY)  # closes globex's 03-05
    send("acme", "api_call", MARCH_5 + 30 * DAY)  # 04-04: closes March and 03-05
    send("acme", "api_call", MARCH_5 + 11 * HOUR, count=3)  # late: 11 calls, 1 over
    send("acme", "api_call", MARCH_5 + 12 * HOUR, count=2)  # late: 13 calls, 3 over
    send("acme", "session_started", MARCH_5 + DAY, session_id="s2", user_id="u1", media="audio")
    send("acme", "session_stopped", MARCH_5 + DAY + HOUR, session_id="s2")
    return out, ledger.summary()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store holding every statement and adjustment twice (as republished after a crash)."""
    records, _ = _records()
    batcher = Batcher({"fairuse.statements": "statements"}, max_rows=1000, max_ms=10**9)
    offset = 0
    for _ in range(2):
        for record in records:
            batcher.add("fairuse.statements", 0, offset, record.to_json(), 0.0)
            offset += 1
    path = tmp_path / "warehouse"
    store_batches(f"chdb://{path}", batcher)
    monkeypatch.setenv("FAIRUSE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FAIRUSE_WAREHOUSE_DSN", raising=False)
    return path


def test_statement_lines_apply_the_adjustments_once_each(store: Path) -> None:
    records, summary = _records()
    assert sum(isinstance(r, Adjustment) for r in records) == 3
    final = {(r["tenant_id"], r["metric"], r["period"]): r["observed"] for r in summary}
    with Reader(f"chdb://{store}") as reader:
        lines = statement_lines(reader, "2026-03")
        assert [(x["tenant_id"], x["metric"], x["period"]) for x in lines] == [
            ("acme", "api_calls", "2026-03-05"),
            ("acme", "audio_hours", "2026-03"),
            ("globex", "api_calls", "2026-03-05"),
        ]
        for line in lines:  # the statement plus its adjustments is what the ledger counted
            assert line["observed"] == pytest.approx(
                final[(line["tenant_id"], line["metric"], line["period"])]
            )
        calls, audio, globex = lines
        assert (calls["observed"], calls["limit"], calls["excess"], calls["adjustments"]) == (
            13.0,
            10.0,
            3.0,
            2,
        )
        assert (audio["observed"], audio["adjustments"], audio["unit"]) == (3.0, 1, "hours")
        assert (globex["excess"], globex["adjustments"], globex["policy_revision"]) == (
            20.0,
            0,
            "r1",
        )
        assert [x["tenant_id"] for x in statement_lines(reader, "2026-03", "globex")] == ["globex"]
        assert statement_lines(reader, "2026-04") == []
        (violations,) = reader.query(
            "SELECT violation_ids FROM statements FINAL WHERE tenant_id = 'globex'"
        ).rows[0]
        assert len(violations) == 2  # warning and exceeded of globex's day


def test_report_statements_prints_one_line_per_tenant_metric_and_period(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "statements", "--month", "2026-03", "--format", "json"]) == 0
    lines = json.loads(capsys.readouterr().out)
    assert [(x["tenant_id"], x["period"], x["observed"]) for x in lines] == [
        ("acme", "2026-03-05", 13.0),
        ("acme", "2026-03", 3.0),
        ("globex", "2026-03-05", 30.0),
    ]
    assert main(["report", "statements", "--month", "2026-03", "--tenant", "acme"]) == 0
    table = capsys.readouterr().out
    assert "Statements of acme for 2026-03, adjustments applied" in table
    assert "globex" not in table
