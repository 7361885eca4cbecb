"""The worker's HTTP API, the policy topic and idle-session expiry, against the real broker."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import orjson
from stream_harness import (
    FAIRUSE,
    REPO_ROOT,
    by_topic,
    caught_up,
    comparable,
    consume_all,
    http_get,
    produce,
    read_lines,
    wait_for,
)

from fairuse.events import TS_MIN_MS
from fairuse.ledger import Ledger, usage_view
from fairuse.policy import (
    DEFAULT_POLICY,
    Policy,
    Revision,
    load_policy,
    policy_fingerprint,
    policy_to_toml,
)
from fairuse.settings import KafkaSettings

ADMIN = "admin-token"
TOKENS = {"FAIRUSE_API_TOKEN": ADMIN, "FAIRUSE_API_TENANT_TOKENS": "tenant-001:t1,tenant-002:t2"}
STRICT_POLICY = policy_to_toml(
    Policy(
        [
            Revision(
                "strict-2026",
                TS_MIN_MS,
                dataclasses.replace(
                    DEFAULT_POLICY.revisions[0].limits, api_calls_per_day=300, audio_hours_per_day=1
                ),
                {},
            )
        ]
    )
)


def replayed_ledger(lines: list[bytes]) -> Ledger:
    ledger = Ledger(DEFAULT_POLICY)
    for number, line in enumerate(lines, 1):
        ledger.process(line, f"events:{number}")
    return ledger


def test_live_usage_and_violations_match_the_core_with_auth_and_routing(
    kafka_settings: KafkaSettings, workers, simulated_events: Path
) -> None:
    lines = read_lines(simulated_events)
    first, second = workers(**TOKENS).start(), workers(**TOKENS).start()
    for worker in (first, second):  # both in the group: a rebalance answers 503 (docs/api.md)
        wait_for(
            lambda w=worker: http_get(w.web_port, "/readyz")[0] == 200,
            120,
            "both workers ready",
            explain=worker.log_tail,
        )
    produce(kafka_settings, lines)
    wait_for(lambda: caught_up(kafka_settings, first.app_id), 180, "both workers done")
    assert first.alive() and second.alive(), first.log_tail() + second.log_tail()

    ledger = replayed_ledger(lines)
    violations = consume_all(kafka_settings, ["violations"])["violations"]
    for tenant_id, state in ledger.states.items():
        view = orjson.dumps(usage_view(state, DEFAULT_POLICY, state.clock_ms))
        for worker in (first, second):  # one of them owns the tenant, the other forwards
            expected = orjson.loads(view)
            status, body = http_get(worker.web_port, f"/tenants/{tenant_id}/usage", ADMIN)
            assert status == 200, (tenant_id, body)
            # The expiry timer may have closed sessions of tenants idle at the worker's clock.
            assert set(body.pop("open_sessions")) <= set(expected.pop("open_sessions"))
            assert body == expected
            status, body = http_get(worker.web_port, f"/tenants/{tenant_id}/violations", ADMIN)
            assert status == 200
            assert body["violations"] == [v for v in violations if v["tenant_id"] == tenant_id]

    port = first.web_port
    assert http_get(port, "/tenants/tenant-001/usage")[0] == 401
    assert http_get(port, "/tenants/tenant-001/usage", "wrong")[0] == 401
    assert http_get(port, "/tenants/tenant-001/usage", "t1")[0] == 200
    assert http_get(port, "/tenants/tenant-001/violations", "t2")[0] == 403
    assert http_get(port, "/tenants/tenant-002/violations", "t2")[0] == 200
    assert http_get(port, "/tenants/no-such-tenant/usage", ADMIN)[0] == 404
    assert http_get(port, "/tenants/no-such-tenant/violations", ADMIN)[0] == 404


def test_published_policy_applies_without_restart(
    kafka_settings: KafkaSettings, workers, simulated_events: Path, tmp_path: Path
) -> None:
    lines = read_lines(simulated_events)
    half = len(lines) // 2
    strict_file = tmp_path / "strict.toml"
    strict_file.write_text(STRICT_POLICY)
    strict = load_policy(strict_file)
    worker = workers(**TOKENS).start()
    produce(kafka_settings, lines[:half])
    wait_for(lambda: caught_up(kafka_settings, worker.app_id), 180, "the first half")
    assert http_get(worker.web_port, "/policy", ADMIN)[1]["revisions"] == ["2021-01-12"]

    env = {
        "FAIRUSE_KAFKA_BOOTSTRAP": kafka_settings.bootstrap,
        "FAIRUSE_KAFKA_TOPIC_PREFIX": kafka_settings.topic_prefix,
    }
    published = subprocess.run(
        [*FAIRUSE, "policy", "publish", str(strict_file)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert published.returncode == 0, published.stderr
    wait_for(
        lambda: (
            http_get(worker.web_port, "/policy", ADMIN)[1]["fingerprint"]
            == policy_fingerprint(strict)
        ),
        60,
        "the worker to apply the published policy",
    )
    produce(kafka_settings, lines[half:])
    wait_for(lambda: caught_up(kafka_settings, worker.app_id), 180, "the second half")

    ledger = Ledger(DEFAULT_POLICY)
    records = []
    for number, line in enumerate(lines, 1):
        if number == half + 1:
            ledger.policy = strict
        records += ledger.process(line, f"events:{number}")
    expected = by_topic(records)
    assert any(v["policy_revision"] == "strict-2026" for v in expected["violations"])
    assert comparable(consume_all(kafka_settings)) == comparable(expected)


def test_idle_tenant_sessions_close_on_the_event_time_watermark(
    kafka_settings: KafkaSettings, workers
) -> None:
    start = 1_800_000_000_000
    worker = workers(**TOKENS).start()

    def event(tenant: str, event_id: str, ts: int, kind: str, **fields: object) -> bytes:
        return orjson.dumps(
            {"type": kind, "event_id": event_id, "tenant_id": tenant, "ts": ts, **fields}
        )

    produce(
        kafka_settings,
        [
            event(
                "idle", "i1", start, "session_started", session_id="s1", user_id="u", media="audio"
            ),
            event("idle", "i2", start + 60_000, "session_heartbeat", session_id="s1"),
        ],
    )
    wait_for(
        lambda: http_get(worker.web_port, "/tenants/idle/usage", ADMIN)[0] == 200,
        120,
        "the idle tenant's usage",
    )
    # Wall-clock time passes, the timer runs, but event time stands still: the session stays.
    wait_for(lambda: caught_up(kafka_settings, worker.app_id), 60, "the idle tenant's events")
    assert http_get(worker.web_port, "/tenants/idle/usage", ADMIN)[1]["open_sessions"] == ["s1"]
    produce(kafka_settings, [event("busy", "b1", start + 2 * 3_600_000, "api_call")])
    wait_for(
        lambda: http_get(worker.web_port, "/tenants/idle/usage", ADMIN)[1]["open_sessions"] == [],
        60,
        "the expiry timer to close the idle session",
    )
