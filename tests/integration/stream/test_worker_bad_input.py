"""Bad input on the events topic is dead-lettered with its reason; the worker keeps going."""

from __future__ import annotations

import collections

import orjson
from stream_harness import by_topic, caught_up, comparable, consume_all, produce, wait_for

from fairuse.ledger import Ledger
from fairuse.policy import DEFAULT_POLICY
from fairuse.settings import KafkaSettings

START = 1_800_000_000_000


def event(event_id: str, ts: int, kind: str, **fields: object) -> bytes:
    obj = {"type": kind, "event_id": event_id, "tenant_id": "acme", "ts": ts, **fields}
    return orjson.dumps(obj)


def valid_events(prefix: str, start: int) -> list[bytes]:
    return [
        event(f"{prefix}-1", start, "user_activated", user_id="u1"),
        event(
            f"{prefix}-2", start, "session_started", session_id=prefix, user_id="u1", media="audio"
        ),
        event(f"{prefix}-3", start + 600_000, "session_heartbeat", session_id=prefix),
        event(f"{prefix}-4", start + 900_000, "session_stopped", session_id=prefix),
        event(f"{prefix}-5", start + 900_000, "api_call", count=3000),
    ]


BAD = {
    b"\x00\xff\xfe binary garbage \x81": "bad_json",
    b'{"type":"api_call","tenant_id":"acme","event_id":"big","ts":1800000000000,"pad":"'
    + b"x" * 70_000
    + b'"}': "payload_too_large",
    event("wrong-ts", 0, "api_call").replace(b'"ts":0', b'"ts":"yesterday"'): "wrong_type",
    b"[1, 2, 3]": "not_an_object",
    event("odd", START, "teleport"): "unknown_type",
    event("neg", START, "api_call", count=-5): "out_of_range",
    event("nosid", START, "session_heartbeat"): "missing_field",
}


def test_bad_payloads_are_dead_lettered_and_nothing_else_changes(
    kafka_settings: KafkaSettings, workers
) -> None:
    before, after = valid_events("a", START), valid_events("b", START + 86_400_000)
    payloads = [*before, *BAD, *after]
    worker = workers().start()
    produce(kafka_settings, payloads)
    wait_for(lambda: caught_up(kafka_settings, worker.app_id), 120, "the worker")
    assert worker.alive(), worker.log_tail()

    got = consume_all(kafka_settings)
    reasons = collections.Counter(d["reason"] for d in got["dead-letter"])
    assert reasons == collections.Counter(BAD.values())
    assert all(
        d["source"].startswith(kafka_settings.topic("events") + "/") for d in got["dead-letter"]
    )
    garbage = next(d for d in got["dead-letter"] if d["reason"] == "bad_json")
    assert garbage["raw_encoding"] == "base64"

    ledger = Ledger(DEFAULT_POLICY)
    expected = by_topic(
        record
        for number, payload in enumerate(payloads)
        for record in ledger.process(payload, f"events:{number}")
    )
    assert expected["usage"] and expected["violations"]  # the valid events after the bad ones
    assert comparable(got) == comparable(expected)
