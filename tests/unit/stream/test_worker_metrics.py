"""The worker's metrics: what a batch counts, bounded labels, no tenant ids, lag series."""

from __future__ import annotations

import orjson
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fairuse.events import ApiCall, SessionStarted, encode_event
from fairuse.records import Enforcement, Violation, dead_letter
from fairuse.stream.core import Inbound, Outbound
from fairuse.stream.metrics import OTHER, WorkerMetrics, event_type, tally

TS = 1_793_577_600_000
PREFIX = "p."


def _inbound(payload: bytes, partition: int = 0, offset: int = 0) -> Inbound:
    return Inbound(payload, f"{PREFIX}events", partition, offset)


def _samples(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_event_types_are_read_from_the_prefix_or_parsed_and_bounded() -> None:
    call = encode_event(ApiCall(event_id="e1", tenant_id="t", ts=TS, count=1))
    assert event_type(call) == "api_call"
    assert event_type(b'{"tenant_id":"t","type":"user_activated"}') == "user_activated"
    assert event_type(b'{"type":"made_up_type_of_event"}') == OTHER
    assert event_type(b"\xff garbage") == OTHER
    assert event_type(b"[1, 2]") == OTHER


def test_a_batch_tally_counts_inputs_and_outputs_by_bounded_label() -> None:
    started = SessionStarted(
        event_id="e2", tenant_id="t", ts=TS + 5, session_id="s", user_id="u", media="audio"
    )
    messages = [
        _inbound(encode_event(ApiCall(event_id="e1", tenant_id="t", ts=TS, count=1)), 0, 0),
        _inbound(encode_event(started), 0, 1),
        _inbound(b"not json", 3, 7),
    ]
    violation = Violation(
        violation_id="v", tenant_id="t", metric="audio_hours", period="2026-11",
        status="exceeded", observed=2.0, limit=1.0, unit="hours", seats=1,
        policy_revision="r", ts=TS,
    )  # fmt: skip
    step = Enforcement(
        enforcement_id="n", tenant_id="t", kind="notice", action="throttle", ts=TS,
        effective_at=TS, strikes=("a",),
    )  # fmt: skip
    letter = dead_letter(b"not json", "bad_json", "bad", source="x/3/7")
    outputs = [
        Outbound(f"{PREFIX}violations", b"t", violation.to_json()),
        Outbound(f"{PREFIX}enforcement", b"t", step.to_json()),
        Outbound(f"{PREFIX}dead-letter", b"", letter.to_json()),
        Outbound(f"{PREFIX}usage", b"t", b"{}"),
        Outbound(f"{PREFIX}usage", b"t", b"{}"),
    ]
    counts = tally(messages, outputs, PREFIX)
    assert counts.events_by_type == {"api_call": 1, "session_started": 1, OTHER: 1}
    assert counts.dead_letters_by_reason == {"bad_json": 1}
    assert counts.records_by_topic == {
        "violations": 1,
        "enforcement": 1,
        "dead-letter": 1,
        "usage": 2,
    }
    assert counts.violations == {("audio_hours", "exceeded"): 1}
    assert counts.enforcement == {("notice", "throttle"): 1}
    assert counts.newest_ms_by_partition == {0: TS + 5}  # partition 3's last message has no ts


def test_batch_done_feeds_the_series_and_no_label_is_a_tenant() -> None:
    metrics = WorkerMetrics(clock=lambda: TS / 1000 + 90)
    messages = [_inbound(encode_event(ApiCall(event_id=f"e{i}", tenant_id=f"tenant-{i}", ts=TS,
                                              count=1)), 2, i) for i in range(50)]  # fmt: skip
    metrics.batch_done(
        tally(messages, [], PREFIX), redelivered=3, event_id_duplicates=2,
        state_bytes=4096, changelog_bytes=1024, duration_s=0.02,
    )  # fmt: skip
    metrics.partition_lag({2: 17})
    samples = _samples(metrics)
    assert samples["fairuse_worker_events_total", (("type", "api_call"),)] == 50
    assert samples["fairuse_worker_duplicates_dropped_total", (("cause", "redelivered"),)] == 3
    assert samples["fairuse_worker_duplicates_dropped_total", (("cause", "event_id"),)] == 2
    assert samples["fairuse_worker_batch_events_count", ()] == 1
    assert samples["fairuse_worker_state_bytes", ()] == 4096
    assert samples["fairuse_worker_changelog_written_bytes_total", ()] == 1024
    assert samples["fairuse_worker_consumer_lag_messages", (("partition", "2"),)] == 17
    assert samples["fairuse_worker_event_time_lag_seconds", (("partition", "2"),)] == 90
    labels = {name for _, pairs in samples for name, _ in pairs}
    assert not any("tenant" in label for label in labels)
    assert all(name.startswith(("fairuse_worker_", "process_", "python_")) for name, _ in samples)


def test_series_of_partitions_that_moved_away_are_dropped() -> None:
    metrics = WorkerMetrics(clock=lambda: TS / 1000)
    metrics.partition_lag({0: 5, 1: 6})
    metrics.event_time({0: TS, 1: TS})
    metrics.assigned([1])
    partitions = {
        dict(pairs).get("partition")
        for name, pairs in _samples(metrics)
        if name in ("fairuse_worker_consumer_lag_messages", "fairuse_worker_event_time_lag_seconds")
    }
    assert partitions == {"1"}
    metrics.event_time({1: TS - 1000})  # never backwards
    assert _samples(metrics)["fairuse_worker_newest_event_time_seconds", (("partition", "1"),)] == (
        TS / 1000
    )


def test_the_series_count_is_bounded_whatever_the_tenants() -> None:
    metrics = WorkerMetrics()
    many = [
        _inbound(orjson.dumps({"type": "api_call", "tenant_id": f"t{i}", "ts": TS}), i % 8, i)
        for i in range(5000)
    ]
    metrics.batch_done(
        tally(many, [], PREFIX), redelivered=0, event_id_duplicates=0,
        state_bytes=0, changelog_bytes=0, duration_s=0.1,
    )  # fmt: skip
    metrics.partition_lag(dict.fromkeys(range(8), 0))
    series = [key for key in _samples(metrics) if key[0].startswith("fairuse_")]
    assert len(series) < 250, len(series)
