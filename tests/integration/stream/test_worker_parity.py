"""End to end: the worker's outputs equal ``fairuse replay``'s for the simulator's events."""

from __future__ import annotations

import collections
from pathlib import Path

from stream_harness import (
    caught_up,
    comparable,
    consume_all,
    produce,
    read_lines,
    replay,
    wait_for,
)

from fairuse.settings import KafkaSettings


def test_outputs_equal_replay(
    kafka_settings: KafkaSettings, workers, simulated_events: Path, tmp_path: Path
) -> None:
    expected = replay(simulated_events, tmp_path)
    assert expected["violations"] and expected["enforcement"] and expected["dead-letter"]
    produce(kafka_settings, read_lines(simulated_events))
    worker = workers().start()

    wait_for(
        lambda: caught_up(kafka_settings, worker.app_id) or not worker.alive(),
        180,
        "the worker to commit every event",
    )
    assert worker.alive(), worker.log_tail()
    got = consume_all(kafka_settings)

    # A clean run publishes each record exactly once, in the replay's contents.
    assert comparable(got) == comparable(expected)
    sources = collections.Counter(d["source"].rsplit("/", 2)[0] for d in got["dead-letter"])
    assert sources == {kafka_settings.topic("events"): len(expected["dead-letter"])}


def _issue_9_events() -> list[bytes]:
    """Events of issue 9's cases where state matters, one tenant per case (default policy)."""
    import orjson

    from fairuse.policy import parse_instant

    def at(text: str) -> int:
        return parse_instant(text + ":00+00:00")

    audio = {"session_id": "s", "user_id": "u", "media": "audio"}
    window = {"notice_id": "n", "starts": at("2026-03-02T10:00"), "ends": at("2026-03-02T20:00")}
    cases: dict[str, list[tuple[str, str, dict]]] = {
        "case1-phantom": [
            ("session_started", "2026-03-02T09:00", audio),
            ("session_heartbeat", "2026-03-02T09:01", {"session_id": "s"}),
            ("session_stopped", "2026-03-04T09:01", {"session_id": "s"}),
        ],
        "case4-channels": [
            ("session_started", "2026-03-02T09:00", {**audio, "channels": 9}),
            ("session_heartbeat", "2026-03-02T09:05", {"session_id": "s"}),
            ("session_stopped", "2026-03-02T09:10", {"session_id": "s"}),
        ],
        "case5-clock": [
            ("api_call", "2026-03-02T10:00", {"count": 2401}),
            ("api_call", "2026-03-20T10:00", {"count": 1}),
            ("api_call", "2026-03-03T10:00", {"count": 2401}),
        ],
        "case6-lapse": [
            ("api_call", "2026-03-02T10:00", {"count": 2401}),
            ("api_call", "2026-03-03T10:00", {"count": 2401}),
            ("api_call", "2027-02-03T10:00", {"count": 2401}),
        ],
        "case8-notice": [
            ("usage_notice", "2026-03-02T08:00", window),
            ("api_call", "2026-03-02T10:00", {"count": 2401}),
        ],
        "case10-until": [
            ("api_call", "2026-03-02T10:00", {"count": 2401}),
            ("api_call", "2026-03-03T10:00", {"count": 2402}),
            ("api_call", "2026-03-18T10:00", {"count": 2500}),
            ("api_call", "2026-03-19T00:00", {"count": 1}),
        ],
    }  # fmt: skip
    payloads = []
    for tenant, events in cases.items():
        for i, (kind, when, fields) in enumerate(events):
            event = {"type": kind, "event_id": f"{tenant}-{i}", "tenant_id": tenant, "ts": at(when)}
            payloads.append(orjson.dumps({**event, **fields}))
    return payloads


def test_issue_9_cases_stream_as_they_replay(
    kafka_settings: KafkaSettings, workers, tmp_path: Path
) -> None:
    payloads = _issue_9_events()
    events = tmp_path / "issue9.ndjson"
    events.write_bytes(b"\n".join(payloads) + b"\n")
    expected = replay(events, tmp_path)
    kinds = sorted(e["kind"] for e in expected["enforcement"])
    assert kinds == ["action", "lapsed", "lifted", "notice", "notice", "notice"]
    reasons = sorted(d["reason"] for d in expected["dead-letter"])
    assert reasons == [
        "notice_out_of_bounds",
        "out_of_range",
        "rejected_session",
        "rejected_session",
    ]
    produce(kafka_settings, payloads)
    worker = workers().start()
    wait_for(
        lambda: caught_up(kafka_settings, worker.app_id) or not worker.alive(),
        180,
        "the worker to commit every event",
    )
    assert worker.alive(), worker.log_tail()
    assert comparable(consume_all(kafka_settings)) == comparable(expected)
