"""The simulator's breakers are what the ledger flags: a simulated month through the pure core
raises each breaker's metric to ``exceeded`` and nobody else's; faults land in dead letters."""

from __future__ import annotations

from collections import Counter

from fairuse.ledger import Ledger
from fairuse.policy import DEFAULT_POLICY
from fairuse.recorder.simulator import DAY_MS, FleetConfig, simulate, tenant_profiles
from fairuse.records import DeadLetter, Violation

METRIC_OF = {
    "audio": "audio_hours",
    "video": "video_hours",
    "api": "api_calls",
    "storage": "stored_calls_per_user",
}


def test_a_month_through_the_ledger_flags_exactly_the_breakers() -> None:
    config = FleetConfig(
        seed=3, tenants=6, breaker_share=4 / 6, duration_ms=30 * DAY_MS, fault_rate=0.001
    )
    breakers = {p.tenant_id: p.breaker for p in tenant_profiles(config) if p.breaker}
    assert sorted(breakers.values()) == sorted(METRIC_OF)
    ledger = Ledger(DEFAULT_POLICY)
    exceeded: set[tuple[str, str]] = set()
    dead: Counter[str] = Counter()
    garbage = 0
    for emission in simulate(config):
        garbage += emission.fault == "garbage"
        for record in ledger.process(emission.payload, "simulator"):
            if isinstance(record, Violation) and record.status == "exceeded":
                exceeded.add((record.tenant_id, record.metric))
            elif isinstance(record, DeadLetter):
                dead[record.reason] += 1
    assert exceeded == {(tenant, METRIC_OF[kind]) for tenant, kind in breakers.items()}
    assert ledger.duplicates > 0
    assert dead["stop_before_start"] > 0
    assert sum(dead[r] for r in ("bad_json", "not_an_object", "unknown_type")) == garbage > 0
