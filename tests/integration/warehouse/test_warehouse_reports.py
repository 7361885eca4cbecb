"""Reports on a known data set equal the core's usage summary (to well under a second)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from warehouse_support import store_batches

from fairuse.ledger import Ledger
from fairuse.policy import DEFAULT_POLICY
from fairuse.recorder.simulator import DAY_MS, FleetConfig, simulate
from fairuse.records import UsageAccrual, Violation
from fairuse.warehouse import reports
from fairuse.warehouse.batching import Batcher
from fairuse.warehouse.store import Reader

SECOND_IN_HOURS = 1 / 3600
TOPICS = {"events": "events", "usage": "usage", "violations": "violations"}


def _load(dsn: str) -> list[dict[str, Any]]:
    """Run the simulator's events through the ledger and store events and its records."""
    ledger = Ledger(DEFAULT_POLICY)
    batcher = Batcher(TOPICS, max_rows=5000, max_ms=10**9)
    offsets: Counter[str] = Counter()

    def add(topic: str, payload: bytes) -> None:
        batcher.add(topic, 0, offsets[topic], payload, 0.0)
        offsets[topic] += 1

    for i, emission in enumerate(simulate(FleetConfig(tenants=5, duration_ms=4 * DAY_MS, seed=7))):
        add("events", emission.payload)
        for record in ledger.process(emission.payload, f"sim/0/{i}"):
            if isinstance(record, UsageAccrual):
                add("usage", record.to_json())
            elif isinstance(record, Violation):
                add("violations", record.to_json())
    store_batches(dsn, batcher)
    assert offsets["usage"] > 100, "the data set must exercise accruals"
    return ledger.summary()


def test_usage_reports_equal_the_ledger_summary(warehouse_dsn: str) -> None:
    summary = _load(warehouse_dsn)
    reader = Reader(warehouse_dsn)
    try:
        checked = Counter()
        for row in summary:
            tenant, metric, period = row["tenant_id"], row["metric"], row["period"]
            if metric in ("audio_hours", "video_hours"):
                totals = reader.query(*reports.usage_totals(tenant, period)).dicts()
                (found,) = [t for t in totals if t["metric"] == metric]
                assert found["observed"] == pytest.approx(row["observed"], abs=SECOND_IN_HOURS)
                assert found["raw_hours"] == pytest.approx(row["raw_hours"], abs=SECOND_IN_HOURS)
                checked[metric] += 1
            elif metric == "api_calls":
                daily = reader.query(*reports.usage_daily(tenant, period[:7])).dicts()
                (found,) = [d for d in daily if d["metric"] == metric and d["day"] == period]
                assert found["amount"] == row["observed"]
                checked[metric] += 1
        assert checked["audio_hours"] + checked["video_hours"] >= 3 and checked["api_calls"] >= 3
        assert reader.query(*reports.consistency(summary[0]["period"][:7])).rows == []
        offenders = reader.query(*reports.offenders(summary[0]["period"][:7], top=50)).dicts()
        assert {o["tenant_id"] for o in offenders} >= {r["tenant_id"] for r in summary}
    finally:
        reader.close()


def test_offenders_rank_by_exceeded_then_ratio_and_filter_by_metric(warehouse_dsn: str) -> None:
    from fairuse.records import Violation as V

    batcher = Batcher({"violations": "violations"}, max_rows=100, max_ms=10**9)
    specs = [  # tenant, metric, period, status, observed, limit
        ("t-a", "audio_hours", "2026-11", "exceeded", 300.0, 200.0),
        ("t-a", "audio_hours", "2026-11", "warning", 170.0, 200.0),
        ("t-b", "audio_hours", "2026-11", "exceeded", 250.0, 200.0),
        ("t-b", "video_hours", "2026-11", "exceeded", 160.0, 100.0),
        ("t-c", "api_calls", "2026-11-03", "exceeded", 5000.0, 2400.0),
        ("t-c", "api_calls", "2026-11-04", "exceeded", 3000.0, 2400.0),
        ("t-d", "audio_hours", "2026-10", "exceeded", 900.0, 200.0),  # another month
    ]
    for offset, (tenant, metric, period, status, observed, limit) in enumerate(specs):
        record = V(
            violation_id=f"v{offset}", tenant_id=tenant, metric=metric, period=period,
            status=status, observed=observed, limit=limit, unit="hours", seats=1,
            policy_revision="r", ts=1_793_577_600_000 + offset,
        )  # fmt: skip
        for copy in range(2):  # republished: must count once
            batcher.add("violations", copy, offset, record.to_json(), 0.0)
    store_batches(warehouse_dsn, batcher)
    reader = Reader(warehouse_dsn)
    try:
        ranked = reader.query(*reports.offenders("2026-11", top=3)).dicts()
        assert [(r["tenant_id"], r["metric"], r["exceeded"]) for r in ranked] == [
            ("t-c", "api_calls", 2),
            ("t-b", "video_hours", 1),
            ("t-a", "audio_hours", 1),
        ]
        assert ranked[2]["warnings"] == 1 and ranked[0]["worst_ratio"] == pytest.approx(5000 / 2400)
        audio = reader.query(*reports.offenders("2026-11", metric="audio_hours")).dicts()
        assert [r["tenant_id"] for r in audio] == ["t-a", "t-b"]
        listed = reader.query(*reports.violations("t-c", "2026-11")).dicts()
        assert [v["period"] for v in listed] == ["2026-11-03", "2026-11-04"]
    finally:
        reader.close()
