"""The wire contract v1: parse_event accepts valid events, rejects the rest with a reason."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairuse.events import (
    EVENT_TYPES,
    MAX_PAYLOAD_BYTES,
    METRICS,
    TS_MAX_MS,
    TS_MIN_MS,
    ApiCall,
    CallDeleted,
    CallStored,
    Event,
    Rejection,
    SessionHeartbeat,
    SessionStarted,
    SessionStopped,
    UsageNotice,
    UserActivated,
    UserDeactivated,
    encode_event,
    event_key,
    parse_event,
    parse_object,
)

TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BASE = {"event_id": "e1", "tenant_id": "acme", "ts": TS}


def payload(**fields: Any) -> bytes:
    return orjson.dumps({**BASE, **fields})


def without(obj: dict[str, Any], name: str) -> bytes:
    return orjson.dumps({k: v for k, v in obj.items() if k != name})


# --- valid events and defaults ------------------------------------------------------------------


def test_every_type_parses_with_defaults() -> None:
    common = {"event_id": "e1", "tenant_id": "acme", "ts": TS, "v": 1}
    cases = [
        (
            payload(type="session_started", session_id="s", user_id="u", media="audio"),
            SessionStarted(**common, session_id="s", user_id="u", media="audio", channels=1),
        ),
        (
            payload(type="session_started", session_id="s", user_id="u", media="video"),
            SessionStarted(**common, session_id="s", user_id="u", media="video"),
        ),
        (
            payload(type="session_heartbeat", session_id="s"),
            SessionHeartbeat(**common, session_id="s"),
        ),
        (payload(type="session_stopped", session_id="s"), SessionStopped(**common, session_id="s")),
        (payload(type="api_call"), ApiCall(**common, count=1)),
        (payload(type="call_stored", call_id="c"), CallStored(**common, call_id="c")),
        (payload(type="call_deleted", call_id="c"), CallDeleted(**common, call_id="c")),
        (payload(type="user_activated", user_id="u"), UserActivated(**common, user_id="u")),
        (payload(type="user_deactivated", user_id="u"), UserDeactivated(**common, user_id="u")),
        (
            payload(type="usage_notice", notice_id="n", starts=TS, ends=TS + 1),
            UsageNotice(**common, notice_id="n", starts=TS, ends=TS + 1, metrics=METRICS),
        ),
    ]
    assert {type(expected) for _, expected in cases} == set(EVENT_TYPES.values())
    for raw, expected in cases:
        assert parse_event(raw) == expected


def test_video_defaults_are_1080p_and_audio_defaults_mono() -> None:
    video = parse_event(payload(type="session_started", session_id="s", user_id="u", media="video"))
    audio = parse_event(payload(type="session_started", session_id="s", user_id="u", media="audio"))
    assert isinstance(video, SessionStarted) and (video.width, video.height) == (1920, 1080)
    assert isinstance(audio, SessionStarted) and audio.channels == 1


def test_optional_fields_given_and_null_means_default() -> None:
    stereo = parse_event(
        payload(type="session_started", session_id="s", user_id="u", media="audio", channels=2)
    )
    uhd = parse_event(
        payload(
            type="session_started",
            session_id="s",
            user_id="u",
            media="video",
            width=3840,
            height=2160,
        )
    )
    batch = parse_event(payload(type="api_call", count=250))
    nulls = parse_event(payload(type="api_call", count=None, v=None))
    assert isinstance(stereo, SessionStarted) and stereo.channels == 2
    assert isinstance(uhd, SessionStarted) and (uhd.width, uhd.height) == (3840, 2160)
    assert isinstance(batch, ApiCall) and batch.count == 250
    assert isinstance(nulls, ApiCall) and (nulls.count, nulls.v) == (1, 1)


def test_unknown_fields_are_ignored_and_ts_bounds_are_half_open() -> None:
    assert isinstance(parse_event(payload(type="api_call", extra={"x": 1})), ApiCall)
    assert isinstance(parse_event(payload(type="api_call", ts=TS_MIN_MS)), ApiCall)
    assert isinstance(parse_event(payload(type="api_call", ts=TS_MAX_MS - 1)), ApiCall)


def test_notice_metrics_are_deduplicated_in_order() -> None:
    event = parse_event(
        payload(
            type="usage_notice",
            notice_id="n",
            starts=TS,
            ends=TS + 1,
            metrics=["api_calls", "audio_hours", "api_calls"],
        )
    )
    assert isinstance(event, UsageNotice) and event.metrics == ("api_calls", "audio_hours")


def test_kafka_key_is_the_tenant_and_wire_has_the_type() -> None:
    event = ApiCall(event_id="e1", tenant_id="acme.eu", ts=TS, count=3)
    assert event_key(event) == b"acme.eu"
    assert orjson.loads(encode_event(event)) == {
        "type": "api_call",
        "event_id": "e1",
        "tenant_id": "acme.eu",
        "ts": TS,
        "v": 1,
        "count": 3,
    }


# --- rejections ---------------------------------------------------------------------------------

STARTED = {**BASE, "type": "session_started", "session_id": "s", "user_id": "u", "media": "video"}
NOTICE = {**BASE, "type": "usage_notice", "notice_id": "n", "starts": TS, "ends": TS + 10}


@pytest.mark.parametrize(
    ("raw", "reason", "detail"),
    [
        (b'{"type": ', "bad_json", "bad JSON: "),
        (b"\xff\xfe", "bad_json", "bad JSON: "),
        ("", "bad_json", "bad JSON: "),
        (b'{"ts": NaN}', "bad_json", "bad JSON: "),
        (b"[1, 2]", "not_an_object", "payload is a JSON list, not an object"),
        (b'"x"', "not_an_object", "payload is a JSON str, not an object"),
        (b"null", "not_an_object", "payload is a JSON NoneType, not an object"),
        (without({**BASE, "type": "api_call"}, "type"), "missing_field", "missing field 'type'"),
        (without(STARTED, "event_id"), "missing_field", "missing field 'event_id'"),
        (without(STARTED, "tenant_id"), "missing_field", "missing field 'tenant_id'"),
        (without(STARTED, "ts"), "missing_field", "missing field 'ts'"),
        (without(STARTED, "session_id"), "missing_field", "missing field 'session_id'"),
        (without(STARTED, "user_id"), "missing_field", "missing field 'user_id'"),
        (without(STARTED, "media"), "missing_field", "missing field 'media'"),
        (payload(type="call_stored"), "missing_field", "missing field 'call_id'"),
        (payload(type="user_activated", user_id=None), "missing_field", "missing field 'user_id'"),
        (without(NOTICE, "ends"), "missing_field", "missing field 'ends'"),
        (without(NOTICE, "notice_id"), "missing_field", "missing field 'notice_id'"),
        (payload(type=7), "wrong_type", "field 'type' must be a string"),
        (payload(type="api_call", event_id=1), "wrong_type", "field 'event_id' must be a string"),
        (
            payload(type="api_call", ts=1.7e12),
            "wrong_type",
            "field 'ts' must be an integer (epoch milliseconds)",
        ),
        (
            payload(type="api_call", ts=str(TS)),
            "wrong_type",
            "field 'ts' must be an integer (epoch milliseconds)",
        ),
        (
            payload(type="api_call", ts=True),
            "wrong_type",
            "field 'ts' must be an integer (epoch milliseconds)",
        ),
        (payload(type="api_call", count=2.0), "wrong_type", "field 'count' must be an integer"),
        (payload(type="api_call", v="1"), "wrong_type", "field 'v' must be an integer"),
        (
            orjson.dumps({**STARTED, "media": "audio", "channels": True}),
            "wrong_type",
            "field 'channels' must be an integer",
        ),
        (
            orjson.dumps({**NOTICE, "metrics": "api_calls"}),
            "wrong_type",
            "field 'metrics' must be a list of metric names",
        ),
        (payload(type="api-call"), "unknown_type", "unknown event type 'api-call'"),
        (payload(type="x" * 100), "unknown_type", f"unknown event type '{'x' * 64}'"),
        (payload(type="api_call", v=2), "unsupported_version", "schema version 2 is not supported"),
        (
            payload(type="api_call", event_id=""),
            "out_of_range",
            "field 'event_id' must be 1-128 characters",
        ),
        (
            payload(type="api_call", event_id="e" * 129),
            "out_of_range",
            "field 'event_id' must be 1-128 characters",
        ),
        (
            payload(type="api_call", tenant_id="t" * 65),
            "out_of_range",
            "field 'tenant_id' must be 1-64 characters",
        ),
        (
            payload(type="api_call", tenant_id="acme corp"),
            "out_of_range",
            "field 'tenant_id' must be 1-64 of [A-Za-z0-9._-]",
        ),
        (
            payload(type="api_call", ts=TS_MIN_MS - 1),
            "out_of_range",
            f"field 'ts' must be epoch ms in [2000-01-01, 2100-01-01), got {TS_MIN_MS - 1}",
        ),
        (
            payload(type="api_call", ts=TS_MAX_MS),
            "out_of_range",
            f"field 'ts' must be epoch ms in [2000-01-01, 2100-01-01), got {TS_MAX_MS}",
        ),
        (
            payload(type="api_call", count=0),
            "out_of_range",
            "field 'count' must be in [1, 1000000000], got 0",
        ),
        (
            payload(type="api_call", v=-1),
            "out_of_range",
            "field 'v' must be in [0, 2147483648], got -1",
        ),
        (
            orjson.dumps({**STARTED, "media": "screen"}),
            "out_of_range",
            "field 'media' must be 'audio' or 'video'",
        ),
        (
            orjson.dumps({**STARTED, "media": "audio", "channels": 9}),
            "out_of_range",
            "field 'channels' must be in [1, 8], got 9",
        ),
        (
            orjson.dumps({**STARTED, "width": 0}),
            "out_of_range",
            "field 'width' must be in [1, 16384], got 0",
        ),
        (
            orjson.dumps({**STARTED, "height": 16385}),
            "out_of_range",
            "field 'height' must be in [1, 16384], got 16385",
        ),
        (
            orjson.dumps({**NOTICE, "ends": TS}),
            "out_of_range",
            "field 'ends' must be after 'starts'",
        ),
        (
            orjson.dumps({**NOTICE, "metrics": []}),
            "out_of_range",
            "field 'metrics' must name some of audio_hours, video_hours, api_calls, "
            "stored_calls_per_user; got []",
        ),
        (
            orjson.dumps({**NOTICE, "metrics": ["api_calls", "disk"]}),
            "out_of_range",
            "field 'metrics' must name some of audio_hours, video_hours, api_calls, "
            "stored_calls_per_user; got ['api_calls', 'disk']",
        ),
    ],
)
def test_rejection_reason_and_detail(raw: bytes | str, reason: str, detail: str) -> None:
    result = parse_event(raw)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert result.detail.startswith(detail) if reason == "bad_json" else result.detail == detail


def test_rejection_keeps_what_is_known_of_the_event() -> None:
    result = parse_event(payload(type="api_call", count=-1))
    assert result == Rejection(
        "out_of_range",
        "field 'count' must be in [1, 1000000000], got -1",
        tenant_id="acme",
        event_id="e1",
        ts=TS,
    )
    bad_tenant = parse_event(payload(type="nope", tenant_id="a b", ts="x"))
    assert isinstance(bad_tenant, Rejection)
    assert (bad_tenant.tenant_id, bad_tenant.event_id, bad_tenant.ts) == ("", "e1", None)


def test_payload_size_limit_counts_utf8_bytes() -> None:
    def padded(size: int, char: str = "x") -> bytes:
        head = payload(type="api_call", pad="")
        filler = (size - len(head)) // len(char.encode())
        raw = payload(type="api_call", pad=char * filler)
        assert len(raw) == size
        return raw

    assert isinstance(parse_event(padded(MAX_PAYLOAD_BYTES)), ApiCall)
    assert isinstance(parse_event(padded(MAX_PAYLOAD_BYTES).decode()), ApiCall)
    too_large = parse_event(padded(MAX_PAYLOAD_BYTES + 1))
    assert too_large == Rejection("payload_too_large", "payload of 65537 bytes is over 65536")
    # 'é' is 2 bytes: a str of fewer than 64 Ki characters can still be too large
    wide = padded(MAX_PAYLOAD_BYTES + 2, "é").decode()
    assert len(wide) < MAX_PAYLOAD_BYTES
    assert isinstance(parse_event(wide), Rejection)
    assert parse_event(wide).reason == "payload_too_large"


def test_lone_surrogate_in_a_str_payload_is_bad_json() -> None:
    result = parse_event('{"type": "api_call", "x": "\ud800"}')
    assert isinstance(result, Rejection) and result.reason == "bad_json"


def test_parse_object_skips_the_json_step() -> None:
    assert parse_object({**BASE, "type": "api_call"}) == ApiCall(**BASE)


# --- properties ---------------------------------------------------------------------------------

ids = st.text(min_size=1, max_size=128)
tenants = st.text(alphabet="abcXYZ019._-", min_size=1, max_size=64)
times = st.integers(TS_MIN_MS, TS_MAX_MS - 1)
common = {"event_id": ids, "tenant_id": tenants, "ts": times}

events = st.one_of(
    st.builds(
        SessionStarted,
        **common,
        session_id=ids,
        user_id=ids,
        media=st.just("audio"),
        channels=st.integers(1, 8),
    ),
    st.builds(
        SessionStarted,
        **common,
        session_id=ids,
        user_id=ids,
        media=st.just("video"),
        width=st.integers(1, 16_384),
        height=st.integers(1, 16_384),
    ),
    st.builds(SessionHeartbeat, **common, session_id=ids),
    st.builds(SessionStopped, **common, session_id=ids),
    st.builds(ApiCall, **common, count=st.integers(1, 1_000_000_000)),
    st.builds(CallStored, **common, call_id=ids),
    st.builds(CallDeleted, **common, call_id=ids),
    st.builds(UserActivated, **common, user_id=ids),
    st.builds(UserDeactivated, **common, user_id=ids),
    st.builds(
        lambda starts, length, **kw: UsageNotice(starts=starts, ends=starts + length, **kw),
        **common,
        notice_id=ids,
        starts=st.integers(TS_MIN_MS, TS_MAX_MS - 2),
        length=st.integers(1, 10**9),
        metrics=st.lists(st.sampled_from(METRICS), min_size=1, unique=True).map(tuple),
    ).filter(lambda e: e.ends < TS_MAX_MS),
)


@given(events)
def test_encode_then_parse_round_trips(event: Event) -> None:
    assert parse_event(encode_event(event)) == event


@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_parse_event_never_raises_on_arbitrary_input(raw: bytes | str) -> None:
    assert isinstance(parse_event(raw), Event | Rejection)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(
    st.fixed_dictionaries(
        {"type": st.sampled_from([*EVENT_TYPES, "other"])},
        optional={
            name: json_values
            for name in (
                "event_id",
                "tenant_id",
                "ts",
                "v",
                "session_id",
                "user_id",
                "media",
                "channels",
                "width",
                "height",
                "count",
                "call_id",
                "notice_id",
                "starts",
                "ends",
                "metrics",
            )
        },
    )
)
def test_parse_object_never_raises_on_arbitrary_objects(obj: dict[str, Any]) -> None:
    assert isinstance(parse_object(obj), Event | Rejection)
