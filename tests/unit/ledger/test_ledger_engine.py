"""The fold: parsing, dedup, record order, summary, usage view, state bytes and purity."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import orjson
import pytest
from ledger_support import DAY, HOUR, MINUTE, Feed, accruals, ms, policy

from fairuse.errors import ConfigError
from fairuse.events import METRICS
from fairuse.ledger import Ledger, TenantState, usage_view
from fairuse.ledger.keyed import DictKeys
from fairuse.ledger.state import CallsRow
from fairuse.records import DeadLetter, UsageAccrual, Violation


def test_invalid_payload_becomes_a_dead_letter_with_the_given_source() -> None:
    ledger = Ledger(policy())
    [letter] = ledger.process(b'{"type": "api_call", "tenant_id": "t"}', "events/3/42")
    assert isinstance(letter, DeadLetter)
    assert (letter.reason, letter.source, letter.tenant_id) == ("missing_field", "events/3/42", "t")
    assert letter.raw == '{"type": "api_call", "tenant_id": "t"}'
    [garbage] = ledger.process(b"\xff\xfe", "f:1")
    assert (garbage.reason, garbage.raw_encoding) == ("bad_json", "base64")
    assert ledger.states == {}


def test_repeated_event_id_is_dropped_counted_and_not_dead_lettered() -> None:
    feed = Feed(api_calls_per_day=10)
    t0 = ms("2026-03-02T09:00")
    first = feed.send("api_call", t0, event_id="same", count=9)
    assert feed.send("api_call", t0 + 1, event_id="same", count=9) == []
    assert feed.ledger.duplicates == 1
    assert feed.state.periods["api_calls"]["2026-03-02"].calls == 9
    assert [v.status for v in first] == ["warning"]
    other = Feed(feed.ledger, tenant="other")  # ids are per tenant
    assert other.send("api_call", t0, event_id="same") == []
    assert feed.ledger.duplicates == 1


def test_event_ids_are_remembered_for_the_horizon_then_forgotten() -> None:
    feed = Feed()
    t0 = ms("2026-03-02T09:00")
    feed.send("api_call", t0, event_id="x", count=5)
    feed.send("api_call", t0 + 7 * DAY, event_id="y")
    feed.send("api_call", t0 + 7 * DAY + 1, event_id="x")
    assert feed.ledger.duplicates == 1  # first seen 7 days before the newest event: remembered
    feed.send("api_call", t0 + 8 * DAY, event_id="z")
    feed.send("api_call", t0 + 8 * DAY + 1, event_id="x", count=2)
    assert feed.ledger.duplicates == 1  # 8 days after it was first seen: a new event
    assert feed.state.periods["api_calls"]["2026-03-10"] == CallsRow(3, 2400)


def test_dedup_horizon_is_configurable_but_at_least_seven_days() -> None:
    with pytest.raises(ConfigError):
        Ledger(policy(), dedup_horizon_ms=DAY)
    ledger = Ledger(policy(), dedup_horizon_ms=30 * DAY)
    feed = Feed(ledger)
    t0 = ms("2026-03-02T09:00")
    feed.send("api_call", t0, event_id="x")
    feed.send("api_call", t0 + 20 * DAY)
    feed.send("api_call", t0 + 20 * DAY, event_id="x")
    assert ledger.duplicates == 1


def test_records_come_accruals_then_violations_then_enforcement() -> None:
    feed = Feed(audio_hours_per_day=1, working_days_per_month=1, repeat_threshold=1)
    t0 = ms("2026-03-31T22:00")
    feed.start("s1", t0)
    records = feed.stop("s1", t0 + 3 * HOUR)  # 2 h in March, 1 h in April; limit 1 h
    kinds = [type(r).__name__ for r in records]
    assert kinds == ["UsageAccrual", "UsageAccrual"] + ["Violation"] * 3 + ["Enforcement"]
    assert [(r.period, r.status) for r in records if isinstance(r, Violation)] == [
        ("2026-03", "warning"),
        ("2026-03", "exceeded"),
        ("2026-04", "warning"),
    ]


def test_summary_rows_cover_every_tenant_metric_and_period() -> None:
    feed = Feed(timezone="Europe/Berlin")
    t0 = ms("2026-03-31T23:30", "Europe/Berlin")
    feed.start("s1", t0, channels=2)
    feed.stop("s1", t0 + HOUR)
    feed.send("api_call", t0, count=3)
    feed.send("call_stored", t0, call_id="c1")
    other = Feed(feed.ledger, tenant="beta")
    other.send("api_call", t0, count=1)
    rows = feed.ledger.summary()
    assert rows == [
        {
            "tenant_id": "acme",
            "metric": "api_calls",
            "period": "2026-03-31",
            "observed": 3,
            "limit": 2400,
            "unit": "calls",
        },
        {
            "tenant_id": "acme",
            "metric": "audio_hours",
            "period": "2026-03",
            "observed": 1.0,
            "limit": 176.0,
            "unit": "hours",
            "raw_hours": 0.5,
            "late_after_expiry": 0,
            "announced": 0.0,
        },
        {
            "tenant_id": "acme",
            "metric": "audio_hours",
            "period": "2026-04",
            "observed": 1.0,
            "limit": 176.0,
            "unit": "hours",
            "raw_hours": 0.5,
            "late_after_expiry": 0,
            "announced": 0.0,
        },
        {
            "tenant_id": "acme",
            "metric": "stored_calls_per_user",
            "period": "2026-03",
            "observed": 1.0,
            "limit": 10000.0,
            "unit": "calls_per_user",
        },
        {
            "tenant_id": "beta",
            "metric": "api_calls",
            "period": "2026-03-31",
            "observed": 1,
            "limit": 2400,
            "unit": "calls",
        },
    ]


def test_summary_keeps_periods_pruned_from_the_state() -> None:
    feed = Feed()
    t0 = ms("2026-01-10T09:00")
    feed.send("api_call", t0, count=7)
    feed.send("api_call", t0 + 200 * DAY)
    assert "2026-01-10" not in feed.state.periods["api_calls"]
    assert [(r["period"], r["observed"]) for r in feed.ledger.summary()] == [
        ("2026-01-10", 7),
        ("2026-07-29", 1),
    ]


def test_usage_view_reports_the_local_day_and_month() -> None:
    feed = Feed(timezone="Asia/Tokyo", api_calls_per_day=100, session_expiry_s=600)
    t0 = ms("2026-03-02T09:00", "Asia/Tokyo")
    feed.send("user_activated", t0, user_id="u1")
    feed.send("user_activated", t0, user_id="u2")
    feed.send("api_call", t0, count=25)
    feed.send("call_stored", t0, call_id="c1")
    feed.start("s1", t0, media="video", width=3840, height=2160)
    for minutes in (10, 20, 30):
        feed.beat("s1", t0 + minutes * MINUTE)
    view = usage_view(feed.state, feed.ledger.policy, t0 + 31 * MINUTE)
    assert view["day"] == "2026-03-02" and view["month"] == "2026-03"
    assert view["seats"] == 2 and view["open_sessions"] == ["s1"]
    assert view["timezone"] == "Asia/Tokyo" and view["policy_revision"] == "r1"
    assert view["metrics"]["api_calls"] == {
        "period": "2026-03-02",
        "observed": 25,
        "limit": 100,
        "percent": 25.0,
        "unit": "calls",
    }
    assert view["metrics"]["video_hours"]["observed"] == 2.0  # 30 min x 4
    assert view["metrics"]["video_hours"]["limit"] == 5.0 * 22 * 2
    assert view["metrics"]["stored_calls_per_user"]["observed"] == 0.5
    assert view["metrics"]["audio_hours"]["observed"] == 0.0
    later = usage_view(feed.state, feed.ledger.policy, t0 + DAY)
    assert later["open_sessions"] == [] and later["metrics"]["api_calls"]["observed"] == 0


def test_usage_view_lists_the_prior_notices_the_ledger_holds() -> None:
    feed = Feed(notice_min_lead=24, notice_max_length=14)
    t0 = ms("2026-03-02T09:00")
    feed.send("api_call", t0)
    assert usage_view(feed.state, feed.ledger.policy, t0)["notices"] == []
    later, soon = t0 + 3 * DAY, t0 + HOUR
    feed.send("usage_notice", t0, "e-late", notice_id="n2", starts=later, ends=later + DAY,
              metrics=["api_calls"])  # fmt: skip
    feed.send("usage_notice", t0, "e-soon", notice_id="n1", starts=soon, ends=soon + DAY)
    notices = usage_view(feed.state, feed.ledger.policy, t0)["notices"]
    assert [n["notice_id"] for n in notices] == ["n1", "n2"]  # by start
    assert notices[1] == {
        "notice_id": "n2",
        "event_id": "e-late",
        "given": t0,
        "starts": later,
        "ends": later + DAY,
        "metrics": ["api_calls"],
        "accepted": True,
        "why": "",
    }
    assert notices[0]["accepted"] is False and "notice_min_lead is 24 h" in notices[0]["why"]
    assert notices[0]["metrics"] == list(METRICS)
    # A repeated notice_id replaces the notice: the view shows the latest one only.
    feed.send("usage_notice", t0 + HOUR, "e-again", notice_id="n2", starts=later, ends=later + HOUR)
    again = usage_view(feed.state, feed.ledger.policy, t0 + HOUR)["notices"]
    assert [(n["notice_id"], n["event_id"], n["ends"]) for n in again] == [
        ("n1", "e-soon", soon + DAY),
        ("n2", "e-again", later + HOUR),
    ]
    # The view is derived from the state alone: the same after a round trip through bytes.
    restored = TenantState.from_bytes(feed.state.to_bytes(), feed.ledger.keys)
    assert usage_view(restored, feed.ledger.policy, t0 + HOUR)["notices"] == again


def test_tenant_state_bytes_round_trip_exactly() -> None:
    feed = Feed(api_calls_per_day=1, repeat_threshold=1)
    t0 = ms("2026-03-02T09:00")
    feed.send("user_activated", t0, user_id="u1")
    feed.start("s1", t0, media="video", width=2560, height=1440)
    feed.beat("s1", t0 + MINUTE)
    feed.stop("early", t0)
    feed.send("api_call", t0, count=3)
    feed.send("call_stored", t0, call_id="c1")
    feed.send("usage_notice", t0, notice_id="n", starts=t0, ends=t0 + 1, metrics=["api_calls"])
    state = feed.state
    data = state.to_bytes()
    again = TenantState.from_bytes(data, feed.ledger.keys)
    assert again == state
    assert again.to_bytes() == data
    assert orjson.loads(data)["v"] == 3
    assert again.pending is not None and again.held_stops["early"].ts == t0
    assert "c1" in again.calls and len(again.calls) == 1


def test_a_ledger_resumes_from_serialised_states() -> None:
    t0 = ms("2026-03-02T09:00")
    whole = Feed()
    whole.start("s1", t0)
    whole.beat("s1", t0 + MINUTE)
    expected = whole.stop("s1", t0 + 2 * MINUTE)
    half = Feed()
    half.start("s1", t0)
    half.beat("s1", t0 + MINUTE)
    keys = DictKeys(dict(half.ledger.keys.data))
    states = {k: TenantState.from_bytes(v.to_bytes(), keys) for k, v in half.ledger.states.items()}
    resumed = Feed(Ledger(half.ledger.policy, states, keys=keys))
    assert resumed.stop("s1", t0 + 2 * MINUTE, event_id="acme-e3") == expected
    assert isinstance(expected[0], UsageAccrual)


def test_accrual_records_name_the_session_user_and_event() -> None:
    feed = Feed()
    t0 = ms("2026-03-02T09:00")
    feed.start("s1", t0, user="ada")
    [a] = accruals(feed.beat("s1", t0 + MINUTE, event_id="hb-1"))
    assert (a.tenant_id, a.session_id, a.user_id, a.event_id) == ("acme", "s1", "ada", "hb-1")


def test_core_imports_without_io_packages() -> None:
    code = textwrap.dedent(
        """
        import sys
        for name in ("faust", "aiokafka", "clickhouse_connect", "chdb", "kafka", "mode"):
            sys.modules[name] = None
        import fairuse.events, fairuse.policy, fairuse.records, fairuse.ledger
        from fairuse.ledger import engine, calendar, sessions, metrics, thresholds, escalation
        import fairuse.replay
        banned = {"faust", "aiokafka", "clickhouse_connect", "chdb", "socket", "urllib.request"}
        loaded = {m for m in banned if sys.modules.get(m) is not None}
        assert not loaded & {"faust", "aiokafka", "clickhouse_connect", "chdb"}, loaded
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_remembered_ids_are_compact_and_pruned_after_the_horizon() -> None:
    feed = Feed()
    t0 = ms("2026-03-02T09:00")
    for i in range(1000):
        feed.send("api_call", t0 + i * MINUTE, event_id=f"a-rather-long-event-id-{i:06d}")
    state = feed.state
    keys = feed.ledger.keys.data
    assert sum(key.startswith("acme/i/") for key in keys) == 1000
    assert len(state.to_bytes()) < 2000  # the entry keeps a count per hour, not the ids
    index = [orjson.loads(v) for k, v in keys.items() if k.startswith("acme/ih/")]
    assert len(index) == sum(state.seen.hours.values()) and sum(map(len, index)) == 1000
    feed.send("api_call", t0 + 10 * DAY)  # a new day: upkeep prunes ids older than 7 days
    assert sorted(keys) == ["acme/i/acme-e1", f"acme/ih/{(t0 + 10 * DAY) // HOUR}/0"]
    feed.send("api_call", t0 + 10 * DAY, event_id="a-rather-long-event-id-000001")
    assert feed.ledger.duplicates == 0  # forgotten: processed as a new event
    assert feed.state.periods["api_calls"]["2026-03-12"].calls == 2


def test_ids_are_pruned_an_hour_at_a_time_not_a_day_at_a_time() -> None:
    """A tenant's ids past the horizon go an hour's worth at a time: no batch has to carry the
    tombstones of a whole day of events (a latency spike in the worker once a day)."""
    feed = Feed()
    t0 = ms("2026-03-02T00:00")
    keys = feed.ledger.keys.data
    held, deleted = [], []
    events = 10 * 24 * 6  # one event every 10 minutes for 10 days
    for i in range(events):
        before = {key for key in keys if key.startswith("acme/i/")}
        feed.send("api_call", t0 + i * 10 * MINUTE, event_id=f"e{i}")
        after = {key for key in keys if key.startswith("acme/i/")}
        held.append(len(after))
        deleted.append(len(before - after))
    assert max(held) <= (7 * 24 + 2) * 6  # the horizon, plus the hour in progress and one more
    assert max(deleted) == 6  # an hour of ids at a time, from the eighth day on
    oldest = min(int(key.removeprefix("acme/i/e")) for key in after)
    assert (events - 1 - oldest) * 10 * MINUTE < 7 * DAY + 2 * HOUR  # none held past that


def test_format_1_states_are_still_read() -> None:
    feed = Feed()
    t0 = ms("2026-03-02T09:00")
    feed.send("api_call", t0, event_id="old-id", count=4)
    state = feed.state
    row = state.periods["api_calls"]["2026-03-02"]
    # format 1: one positional array, ids kept whole with their time
    old = [
        1,
        "acme",
        state.clock_ms,
        {"old-id": t0},
        {},
        {},
        {},
        [],
        [],
        {"api_calls": {"2026-03-02": row.to_list()}},
        ["api_calls|2026-03-02|warning"],
        {},
        [],
        None,
        state.next_upkeep_ms,
    ]
    keys = DictKeys()
    converted = TenantState.from_bytes(orjson.dumps(old), keys)
    assert converted.periods == state.periods and converted.clock_ms == state.clock_ms
    assert converted.marks.has("api_calls", "2026-03-02", "warning")
    resumed = Feed(Ledger(feed.ledger.policy, {"acme": converted}, keys=keys))
    assert resumed.send("api_call", t0 + 1, event_id="old-id") == []
    assert resumed.ledger.duplicates == 1


def test_process_event_without_raw_payload_dead_letters_the_encoded_event() -> None:
    from fairuse.events import SessionStarted, SessionStopped, encode_event

    ledger = Ledger(policy())
    t0 = ms("2026-03-02T09:00")
    stop = SessionStopped(event_id="x1", tenant_id="acme", ts=t0 - 1, session_id="s")
    start = SessionStarted(
        event_id="x2", tenant_id="acme", ts=t0, session_id="s", user_id="u", media="audio"
    )
    assert ledger.process_event(stop, None, "code") == []
    [letter] = ledger.process_event(start, None, "code")
    assert (letter.reason, letter.raw) == ("stop_before_start", encode_event(stop).decode())
    again = SessionStarted(
        event_id="x3", tenant_id="acme", ts=t0, session_id="s", user_id="u", media="audio"
    )
    [letter] = ledger.process_event(again, None, "code")
    assert (letter.reason, letter.raw) == ("duplicate_start", encode_event(again).decode())


def test_process_accepts_text_payloads() -> None:
    ledger = Ledger(policy(api_calls_per_day=1))
    raw = '{"type":"api_call","event_id":"e","tenant_id":"t","ts":1772442000000,"count":2}'
    assert [v.status for v in ledger.process(raw, "s")] == ["warning", "exceeded"]
