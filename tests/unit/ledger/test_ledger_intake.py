"""The ledger's fast parse returns exactly what ``parse_event`` returns, for any payload."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from fairuse.events import TS_MAX_MS, TS_MIN_MS, SessionHeartbeat, parse_event
from fairuse.ledger.intake import parse

ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([TS_MIN_MS - 1, TS_MIN_MS, TS_MAX_MS - 1, TS_MAX_MS, 0, 1, 2]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
    st.sampled_from(["", "a" * 64, "a" * 65, "a" * 128, "a" * 129, "bad tenant", "t/x", "ü"]),
    st.lists(st.integers(-5, 5), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(-5, 5), max_size=1),
)
FIELDS = ("type", "event_id", "tenant_id", "ts", "session_id", "v")


@st.composite
def heartbeat_like(draw: st.DrawFn) -> dict:
    obj = {
        "type": "session_heartbeat",
        "event_id": "e-1",
        "tenant_id": "acme",
        "ts": 1_772_442_000_000,
        "session_id": "s-1",
    }
    if draw(st.booleans()):
        obj["v"] = 1
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        if draw(st.booleans()):
            obj.pop(name, None)
        else:
            obj[name] = draw(ODD_VALUES)
    if draw(st.booleans()):
        obj[draw(st.text(max_size=5))] = draw(ODD_VALUES)
    return obj


@settings(max_examples=600)
@given(obj=heartbeat_like())
def test_fast_parse_equals_parse_event(obj: dict) -> None:
    raw = orjson.dumps(obj)
    assert parse(raw) == parse_event(raw)


@settings(max_examples=200)
@given(raw=st.one_of(st.binary(max_size=40), st.text(max_size=40)))
def test_fast_parse_equals_parse_event_on_arbitrary_input(raw: bytes | str) -> None:
    assert parse(raw) == parse_event(raw)


def test_fast_parse_of_other_types_and_oversized_payloads() -> None:
    started = b'{"type":"session_started","event_id":"e","tenant_id":"t","ts":1772442000000,'
    started += b'"session_id":"s","user_id":"u","media":"video","width":3840,"height":2160}'
    assert parse(started) == parse_event(started)
    huge = orjson.dumps({"type": "session_heartbeat", "pad": "x" * 70_000})
    assert parse(huge) == parse_event(huge)
    assert parse(huge).reason == "payload_too_large"
    ok = b'{"type":"session_heartbeat","event_id":"e","tenant_id":"t","ts":1772442000000,'
    ok += b'"session_id":"s","v":1}'
    assert parse(ok) == SessionHeartbeat(
        event_id="e", tenant_id="t", ts=1772442000000, session_id="s"
    )
