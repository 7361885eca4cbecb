"""Request decoding (JSON, NDJSON, CloudEvents mapping), ingest tokens and the rate limiter."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairuse.errors import ConfigError
from fairuse.events import ApiCall, Rejection, SessionStarted, UsageNotice, parse_event
from fairuse.ingest.auth import IngestTokens, RateLimiter, may_write
from fairuse.ingest.decode import BadBody, from_cloudevent, items, to_cloudevent

TS = 1_767_225_600_123

EVENTS = [
    ApiCall(event_id="e1", tenant_id="acme", ts=TS, count=7),
    SessionStarted(
        event_id="e2", tenant_id="acme", ts=TS, session_id="s", user_id="u", media="video"
    ),
    UsageNotice(
        event_id="e3", tenant_id="acme", ts=TS, notice_id="n", starts=TS, ends=TS + 1,
        metrics=("api_calls",),
    ),
]  # fmt: skip


@given(st.sampled_from(EVENTS), st.integers(946_684_800_000, 4_102_444_799_999))
def test_cloudevents_map_back_to_the_same_event(event, ts: int) -> None:  # type: ignore[no-untyped-def]
    event = replace(event, ts=ts)
    ce = to_cloudevent(event)
    assert ce["type"] == f"fairuse.{event.type}" and ce["subject"] == "acme"
    (item,) = items(orjson.dumps(ce), "application/cloudevents+json")
    assert item.parsed == event


def test_cloudevent_time_with_an_offset_and_microseconds() -> None:
    ce = {
        "specversion": "1.0", "id": "x", "source": "gw", "type": "fairuse.api_call",
        "subject": "acme", "time": "2026-01-01T01:00:00.123999+01:00", "data": {"count": 2},
    }  # fmt: skip
    assert from_cloudevent(ce)["ts"] == 1_767_225_600_123  # type: ignore[index]


@pytest.mark.parametrize(
    ("change", "reason", "detail"),
    [
        ({"specversion": "0.3"}, "unsupported_version", "specversion '0.3'"),
        ({"subject": None}, "missing_field", "'subject'"),
        ({"type": "api_call"}, "unknown_type", "fairuse.<event type>"),
        ({"type": "fairuse.api-call"}, "unknown_type", "unknown event type 'api-call'"),
        ({"time": "2026-01-01T00:00:00"}, "wrong_type", "RFC 3339"),
        ({"data": [1]}, "wrong_type", "'data' must be a JSON object"),
        ({"data": {"count": 0}}, "out_of_range", "field 'count'"),
        ({"subject": "acme corp"}, "out_of_range", "tenant_id"),
    ],
)
def test_bad_cloudevents_are_rejected_with_the_contracts_reasons(
    change: dict, reason: str, detail: str
) -> None:
    ce = to_cloudevent(EVENTS[0]) | change
    (item,) = items(orjson.dumps([ce]), "application/cloudevents-batch+json")
    assert isinstance(item.parsed, Rejection)
    assert item.parsed.reason == reason and detail in item.parsed.detail


def test_json_ndjson_and_whole_body_errors() -> None:
    lines = [orjson.dumps(e.to_dict()) for e in EVENTS]
    assert [i.parsed for i in items(b"\n".join(lines) + b"\n\n", "application/x-ndjson")] == EVENTS
    as_array = items(orjson.dumps([e.to_dict() for e in EVENTS]), "application/json")
    assert [i.parsed for i in as_array] == EVENTS
    assert [i.parsed for i in items(lines[0], "application/json")] == EVENTS[:1]
    (bad_line,) = items(b"[1]", "application/x-ndjson")
    assert bad_line.parsed == parse_event(b"[1]")
    with pytest.raises(BadBody, match="bad JSON"):
        items(b"[{", "application/json")
    with pytest.raises(BadBody, match="must be a JSON array"):
        items(b"{}", "application/cloudevents-batch+json")


def test_tokens_are_scoped_to_tenants() -> None:
    tokens = IngestTokens.parse("gw1=acme, globex ; all=*")
    assert tokens.tenants_of("Bearer gw1") == ("gw1", frozenset({"acme", "globex"}))
    assert tokens.tenants_of("Bearer nope") is None
    assert tokens.tenants_of("Basic gw1") is None
    _token, scope = tokens.tenants_of("bearer all")  # type: ignore[misc]
    assert may_write(scope, "anyone")
    assert not may_write(frozenset({"acme"}), "initech")
    with pytest.raises(ConfigError, match="token=tenant"):
        IngestTokens.parse("just-a-token")


def test_the_rate_limiter_refills_and_says_how_long_to_wait() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=100, burst=100, clock=lambda: now[0])
    assert limiter.take("a", 100) == 0.0
    assert limiter.take("a", 50) == pytest.approx(0.5)
    assert limiter.take("b", 10) == 0.0  # buckets are per token
    now[0] = 0.5
    assert limiter.take("a", 50) == 0.0
    assert limiter.take("a", 1000) == pytest.approx(1.0)  # never more than a full bucket's wait


def test_ingest_settings_come_from_the_environment() -> None:
    from fairuse.settings import load_settings

    env = {
        "FAIRUSE_INGEST_PORT": "9000",
        "FAIRUSE_INGEST_TOKENS": "t=acme",
        "FAIRUSE_INGEST_MAX_EVENTS": "500",
        "FAIRUSE_INGEST_RATE_EVENTS_PER_S": "10",
    }
    ingest = load_settings(env).ingest
    assert (ingest.port, ingest.tokens, ingest.max_events, ingest.rate_events_per_s) == (
        9000, "t=acme", 500, 10,
    )  # fmt: skip
    assert "t=acme" not in repr(ingest)  # tokens are secrets
    with pytest.raises(ConfigError, match="FAIRUSE_INGEST_PORT"):
        load_settings({"FAIRUSE_INGEST_PORT": "70000"})
    with pytest.raises(ConfigError, match="FAIRUSE_INGEST_MAX_EVENTS"):
        load_settings({"FAIRUSE_INGEST_MAX_EVENTS": "many"})
