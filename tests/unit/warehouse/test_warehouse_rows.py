"""Type mapping: messages -> table rows (DateTime64 from epoch ms, Nullable, arrays, dates)."""

from __future__ import annotations

import datetime as dt

import orjson
from hypothesis import given
from hypothesis import strategies as st

from fairuse.events import ApiCall, SessionStarted, encode_event
from fairuse.records import (
    Adjustment,
    Enforcement,
    Statement,
    UsageAccrual,
    Violation,
    dead_letter,
)
from fairuse.warehouse.rows import (
    TABLE_COLUMNS,
    TOPIC_TABLES,
    columns_of,
    message_row,
    ms_to_datetime,
)

TS = 1_793_577_600_123  # 2026-11-02T00:00:00.123Z


def _row(table: str, columns: tuple) -> dict:
    return dict(zip(TABLE_COLUMNS[table], columns, strict=True))


@given(st.integers(min_value=0, max_value=4_102_444_799_999))
def test_epoch_ms_map_exactly_to_utc_datetimes(ms: int) -> None:
    value = ms_to_datetime(ms)
    assert value.tzinfo is dt.UTC
    back = (value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)
    assert back == ms


def test_event_row_has_typed_columns_and_the_raw_json() -> None:
    raw = encode_event(
        SessionStarted(
            event_id="e1", tenant_id="t", ts=TS, session_id="s", user_id="u", media="audio"
        )
    )
    table, row = message_row("events", raw, "fairuse.events/3/17")
    assert table == "events"
    values = _row(table, row)
    assert values["ts"] == dt.datetime(2026, 11, 2, 0, 0, 0, 123000, tzinfo=dt.UTC)
    assert (values["type"], values["media"], values["user_id"], values["api_count"]) == (
        "session_started", "audio", "u", 0,
    )  # fmt: skip
    assert orjson.loads(values["raw"])["event_id"] == "e1"
    assert values["source"] == "fairuse.events/3/17"
    api = _row(
        "events",
        message_row(
            "events", encode_event(ApiCall(event_id="e2", tenant_id="t", ts=TS, count=9)), "s"
        )[1],
    )
    assert (api["api_count"], api["session_id"], api["media"]) == (9, "", "")


def test_an_event_breaking_the_contract_becomes_the_same_dead_letter_as_the_core_makes() -> None:
    raw = b'{"type": "api_call", "tenant_id": "t", "event_id": "e", "ts": "yesterday"}'
    table, row = message_row("events", raw, "fairuse.events/0/5")
    values = _row(table, row)
    assert table == "dead_letters"
    assert values["reason"] == "wrong_type" and values["origin"] == "sink"
    assert values["ts"] is None  # Nullable(DateTime64) when the time is unknown
    core = dead_letter(raw, "wrong_type", "x", source="fairuse.events/0/5")
    assert values["dead_letter_id"] == core.dead_letter_id  # same id: stored once


def test_records_map_to_their_tables() -> None:
    accrual = UsageAccrual(
        tenant_id="t", metric="video_hours", day="2026-11-30", weighted_ms=1.5, raw_ms=1,
        session_id="s", user_id="u", event_id="e",
    )  # fmt: skip
    usage = _row("usage", message_row("usage", accrual.to_json(), "u/0/0")[1])
    assert usage["day"] == dt.date(2026, 11, 30) and usage["weighted_ms"] == 1.5
    violation = Violation(
        violation_id="v", tenant_id="t", metric="api_calls", period="2026-11-03",
        status="exceeded", observed=2401, limit=2400, unit="calls", seats=2,
        policy_revision="r", ts=TS,
    )  # fmt: skip
    row = _row("violations", message_row("violations", violation.to_json(), "v/0/0")[1])
    assert row["observed"] == 2401.0 and isinstance(row["observed"], float)
    assert (row["seats"], row["user_id"]) == (2.0, "")
    throttle = Enforcement(
        enforcement_id="a", tenant_id="t", kind="action", action="throttle", ts=TS,
        effective_at=TS, strikes=("v",), until=TS + 5,
        metrics=({"metric": "api_calls", "period": "2026-11-03", "observed": 2401,
                  "limit": 2400, "excess": 1, "unit": "calls"},),
    )  # fmt: skip
    row = _row("enforcement", message_row("enforcement", throttle.to_json(), "n/0/0")[1])
    assert row["until"] == ms_to_datetime(TS + 5)
    assert orjson.loads(row["metrics"])[0]["excess"] == 1
    step = Enforcement(
        enforcement_id="n", tenant_id="t", kind="action", action="charge", ts=TS,
        effective_at=TS + 1, strikes=("a", "b"),
    )  # fmt: skip
    row = _row("enforcement", message_row("enforcement", step.to_json(), "n/0/0")[1])
    assert row["strikes"] == ["a", "b"]
    assert (row["metrics"], row["until"]) == ("[]", None)
    assert row["effective_at"] == ms_to_datetime(TS + 1)
    letter = dead_letter(b"\xff", "bad_json", "d", source="src/1/2", tenant_id="t", ts=TS)
    row = _row("dead_letters", message_row("dead_letters", letter.to_json(), "dl/0/0")[1])
    assert (row["raw_encoding"], row["origin"], row["source"]) == ("base64", "core", "src/1/2")


def test_undecodable_records_become_sink_dead_letters() -> None:
    for raw, reason in (
        (b"{nope", "bad_json"),
        (b"[1]", "not_an_object"),
        (b'{"tenant_id": "t"}', "missing_field"),
        (b'{"tenant_id": "t", "metric": 1, "day": "2026-11-01"}', "wrong_type"),
    ):
        table, row = message_row("usage", raw, "fairuse.usage/0/1")
        values = _row(table, row)
        assert (table, values["reason"], values["origin"]) == ("dead_letters", reason, "sink")
    bad_day = orjson.dumps(
        {
            "tenant_id": "t", "metric": "audio_hours", "day": "30.11.2026", "weighted_ms": 1,
            "raw_ms": 1, "session_id": "s", "user_id": "u", "event_id": "e",
        }
    )  # fmt: skip
    assert _row("dead_letters", message_row("usage", bad_day, "x")[1])["reason"] == "out_of_range"


def test_every_topic_has_a_table_and_columns_transpose() -> None:
    # the statements topic fills two tables: statements and adjustments (by the record's kind)
    assert set(TOPIC_TABLES.values()) | {"adjustments"} == set(TABLE_COLUMNS)
    assert columns_of([(1, "a"), (2, "b")]) == [[1, 2], ["a", "b"]]


def test_a_delivery_attempt_maps_to_a_notifications_row() -> None:
    from fairuse.notify.deliveries import Delivery, attempt_record

    delivery = Delivery(
        key="k", record_id="v1", kind="violation.exceeded", tenant_id="t", record={"ts": TS},
        published_at=TS + 5, subscription="s", channel="email", address="a@b.example",
    )  # fmt: skip
    attempt = attempt_record(
        delivery, outcome="failed", status="451 try later", latency_ms=12.5, error="busy",
        gave_up=False, attempted_at=TS + 10,
    )  # fmt: skip
    table, row = message_row("notifications", attempt.to_json(), "fairuse.notifications/0/3")
    values = _row(table, row)
    assert table == "notifications"
    assert (values["attempt"], values["status"], values["gave_up"]) == (1, "451 try later", False)
    assert values["record_ts"] == ms_to_datetime(TS)
    assert values["attempted_at"] == ms_to_datetime(TS + 10)
    missing = orjson.dumps(
        {k: v for k, v in orjson.loads(attempt.to_json()).items() if k != "target"}
    )
    assert message_row("notifications", missing, "x")[0] == "dead_letters"


def test_statements_and_adjustments_share_a_topic_and_fill_two_tables() -> None:
    statement = Statement(
        kind="statement", statement_id="s1", tenant_id="t", metric="api_calls",
        period="2026-11-02", period_start="2026-11-02T00:00:00+00:00",
        period_end="2026-11-03T00:00:00+00:00", observed=2500.0, limit=2400.0, seats=3.0,
        excess=100.0, unit="calls", announced=0.0, violation_ids=("v1", "v2"),
        policy_revision="r1", closed_at=TS,
    )  # fmt: skip
    adjustment = Adjustment(
        kind="adjustment", adjustment_id="a1", statement_id="s1", tenant_id="t",
        metric="api_calls", period="2026-11-02", delta_observed=5.0, delta_excess=5.0,
        delta_announced=0.0, caused_by="e9", at=TS,
    )  # fmt: skip
    table, row = message_row("statements", statement.to_json(), "fairuse.statements/0/1")
    values = _row(table, row)
    assert table == "statements"
    assert values["period_start"] == dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    assert (values["violation_ids"], values["closed_at"]) == (["v1", "v2"], ms_to_datetime(TS))
    table, row = message_row("statements", adjustment.to_json(), "fairuse.statements/0/2")
    assert table == "adjustments"
    assert _row(table, row)["caused_by"] == "e9"
    bad = orjson.dumps({**statement.to_dict(), "period_start": "yesterday"})
    table, row = message_row("statements", bad, "fairuse.statements/0/3")
    assert table == "dead_letters" and "period_start" in _row(table, row)["detail"]
