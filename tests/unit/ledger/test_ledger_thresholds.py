"""Rules 4-5: metrics, periods, limits, seats and the statuses they reach (hand-computed)."""

from __future__ import annotations

import pytest
from ledger_support import HOUR, MINUTE, Feed, ms, policy, statuses, violations

from fairuse.ledger import Ledger
from fairuse.ledger.state import StoredRow, Strike
from fairuse.ledger.thresholds import violation_id
from fairuse.policy import Limits, Policy, Revision
from fairuse.records import stable_id

NY = "America/New_York"


def test_api_calls_count_batches_per_local_day_with_warning_then_exceeded() -> None:
    feed = Feed(timezone=NY)  # 2,400 calls per day
    assert feed.send("api_call", ms("2026-03-02T10:00", NY), count=1000) == []
    # 21:00 in New York is already 03-03 in UTC: still the local day 2026-03-02
    [warning] = feed.send("api_call", ms("2026-03-02T21:00", NY), count=920)
    assert (warning.period, warning.status, warning.observed, warning.limit, warning.unit) == (
        "2026-03-02",
        "warning",
        1920,
        2400,
        "calls",
    )
    assert feed.send("api_call", ms("2026-03-02T22:00", NY)) == []  # 1921: warned already
    [exceeded] = feed.send("api_call", ms("2026-03-02T23:59", NY), count=480)
    assert (exceeded.status, exceeded.observed, exceeded.ts) == (
        "exceeded",
        2401,
        ms("2026-03-02T23:59", NY),
    )
    assert exceeded.violation_id == stable_id("acme", "api_calls", "2026-03-02", "exceeded")
    # the count resets at local midnight; reaching the limit exactly is not above it
    records = feed.send("api_call", ms("2026-03-03T00:30", NY), count=2400)
    assert statuses(records) == [("api_calls", "2026-03-03", "warning")]


def test_a_jump_past_both_thresholds_emits_warning_then_exceeded() -> None:
    feed = Feed()
    records = feed.send("api_call", ms("2026-03-02T10:00"), count=2500)
    assert [v.status for v in records] == ["warning", "exceeded"]
    assert [v.observed for v in records] == [2500, 2500]
    assert feed.send("api_call", ms("2026-03-02T11:00"), count=5000) == []


def test_audio_limit_is_hours_per_day_times_working_days_times_seats() -> None:
    feed = Feed(audio_hours_per_day=1, working_days_per_month=2)  # 2 h per seat per month
    t0 = ms("2026-03-02T09:00")
    feed.send("user_activated", t0, user_id="u1")
    feed.send("user_activated", t0, user_id="u2")  # 2 seats: 4 h
    feed.start("s1", t0)
    assert violations(feed.stop("s1", t0 + 3 * HOUR)) == []  # 3 h < 3.2 h (80 %)
    # one user leaves: seats are averaged over time, still 2 at the moment of leaving
    assert violations(feed.send("user_deactivated", t0 + 4 * HOUR, user_id="u2")) == []
    # 36 h later the month had 2 seats for 4 h and 1 for 36 h: 1.1 seats, limit 2.2 h
    records = feed.send("user_activated", t0 + 40 * HOUR, user_id="u3")
    assert [(v.status, v.observed, v.limit, v.seats, v.unit) for v in records] == [
        ("warning", 3.0, pytest.approx(2.2), pytest.approx(1.1), "hours"),
        ("exceeded", 3.0, pytest.approx(2.2), pytest.approx(1.1), "hours"),
    ]
    assert records[0].period == "2026-03"


def test_warning_is_reached_at_exactly_eighty_percent_and_exceeded_only_above() -> None:
    feed = Feed(video_hours_per_day=1, working_days_per_month=5)  # 5 h, one seat
    t0 = ms("2026-03-02T09:00")
    feed.start("v", t0, media="video")
    assert statuses(feed.beat("v", t0 + 4 * HOUR - 1)) == []
    assert statuses(feed.beat("v", t0 + 4 * HOUR)) == [("video_hours", "2026-03", "warning")]
    assert statuses(feed.beat("v", t0 + 5 * HOUR)) == []
    [v] = feed.stop("v", t0 + 5 * HOUR + 1)[-1:]
    assert (v.status, v.observed) == ("exceeded", (5 * HOUR + 1) / HOUR)


def test_roster_changes_move_a_tenant_over_the_stored_calls_limit() -> None:
    feed = Feed(stored_calls_per_user=2)
    t0 = ms("2026-03-02T09:00")
    for user in ("u1", "u2"):
        feed.send("user_activated", t0, user_id=user)
    for i in range(1, 4):
        assert feed.send("call_stored", t0 + i, call_id=f"c{i}") == []  # up to 1.5 per user
    assert feed.send("call_stored", t0 + 3, call_id="c3") == []  # the same call again
    assert feed.send("call_deleted", t0 + 4, call_id="nope") == []  # an unknown call
    [warning] = feed.send("call_stored", t0 + 5, call_id="c4")
    assert (warning.status, warning.observed, warning.limit, warning.seats, warning.unit) == (
        "warning",
        2.0,
        2.0,
        2,
        "calls_per_user",
    )
    records = feed.send("user_deactivated", t0 + 6, user_id="u2")
    assert [(v.status, v.observed, v.seats) for v in records] == [("exceeded", 4.0, 1)]
    assert feed.send("user_deactivated", t0 + 7, user_id="u2") == []  # no longer active
    feed.send("call_deleted", t0 + 8, call_id="c1")
    assert feed.state.periods["stored_calls_per_user"]["2026-03"] == StoredRow(3.0, 2.0)


def test_usage_inside_an_earlier_notice_is_excused_and_outside_it_exceeded() -> None:
    feed = Feed(api_calls_per_day=10)
    t0 = ms("2026-03-02T09:00")
    feed.send(
        "usage_notice",
        t0 - HOUR,
        notice_id="n1",
        starts=t0,
        ends=t0 + HOUR,
        metrics=["api_calls"],
    )
    assert [v.status for v in feed.send("api_call", t0 + MINUTE, count=11)] == [
        "warning",
        "excused",
    ]
    assert feed.send("api_call", t0 + 2 * MINUTE) == []  # excused once per period
    [exceeded] = feed.send("api_call", t0 + HOUR)  # the notice ends at t0 + 1 h (excluded)
    assert (exceeded.status, exceeded.observed) == ("exceeded", 13)
    assert feed.state.strikes == [
        Strike(exceeded.violation_id, t0 + HOUR, "api_calls", exceeded.period, 13, 10, "calls")
    ]


def test_a_notice_for_another_metric_or_arriving_later_does_not_excuse() -> None:
    feed = Feed(api_calls_per_day=10)
    t0 = ms("2026-03-02T09:00")
    feed.send(
        "usage_notice", t0, notice_id="n1", starts=t0, ends=t0 + HOUR, metrics=["audio_hours"]
    )
    assert [v.status for v in feed.send("api_call", t0 + 1, count=11)] == ["warning", "exceeded"]
    later = Feed(api_calls_per_day=10)
    later.send("api_call", t0 + 1, count=11)
    [letter] = later.send("usage_notice", t0 + 2, notice_id="n2", starts=t0, ends=t0 + HOUR)
    assert letter.reason == "notice_out_of_bounds"  # it came after its start: not prior notice
    assert later.send("api_call", t0 + 3) == []


def test_an_exceeded_period_is_not_excused_afterwards() -> None:
    feed = Feed(api_calls_per_day=10)
    t0 = ms("2026-03-02T09:00")
    feed.send("api_call", t0, count=11)
    feed.send("usage_notice", t0 + 1, notice_id="n", starts=t0, ends=t0 + HOUR)
    assert feed.send("api_call", t0 + 2) == []


def test_policy_revision_change_mid_month_applies_from_the_next_month() -> None:
    switch = ms("2026-03-15T00:00")
    two_revisions = Policy(
        [
            Revision(
                "r1",
                ms("2021-01-12T00:00"),
                Limits(audio_hours_per_day=1, working_days_per_month=2, session_expiry_s=10**6),
            ),
            Revision(
                "r2",
                switch,
                Limits(audio_hours_per_day=0.5, working_days_per_month=2, session_expiry_s=10**6),
            ),
        ]
    )
    feed = Feed(Ledger(two_revisions))
    t0 = ms("2026-03-02T09:00")
    feed.start("s1", t0)
    assert violations(feed.stop("s1", t0 + 90 * MINUTE)) == []  # 1.5 h < 1.6 h under r1
    feed.start("s2", switch + HOUR)
    records = violations(feed.stop("s2", switch + HOUR + 10 * MINUTE))  # 1.67 h: r1 still
    assert [(v.status, v.limit, v.policy_revision) for v in records] == [("warning", 2.0, "r1")]
    feed.start("s3", ms("2026-04-01T09:00"))
    records = violations(feed.stop("s3", ms("2026-04-01T10:01")))  # April: r2, 1 h
    assert [(v.status, v.limit, v.policy_revision) for v in records] == [
        ("warning", 1.0, "r2"),
        ("exceeded", 1.0, "r2"),
    ]


def test_new_policy_set_on_the_ledger_applies_from_the_next_event() -> None:
    feed = Feed(api_calls_per_day=100)
    t0 = ms("2026-03-02T09:00")
    assert feed.send("api_call", t0, count=50) == []
    feed.ledger.policy = policy("tight", api_calls_per_day=50)
    records = feed.send("api_call", t0 + 1)
    assert [(v.status, v.observed, v.limit, v.policy_revision) for v in records] == [
        ("warning", 51, 50, "tight"),
        ("exceeded", 51, 50, "tight"),
    ]


def test_tenant_override_sets_zone_and_limits() -> None:
    ledger = Ledger(policy(tenants={"big": Limits(api_calls_per_day=5, timezone="Asia/Tokyo")}))
    big, small = Feed(ledger, "big"), Feed(ledger, "small")
    ts = ms("2026-03-02T20:00")  # 05:00 on 03-03 in Tokyo
    assert statuses(big.send("api_call", ts, count=6)) == [
        ("api_calls", "2026-03-03", "warning"),
        ("api_calls", "2026-03-03", "exceeded"),
    ]
    assert small.send("api_call", ts, count=6) == []


def test_violation_id_is_deterministic_from_tenant_metric_period_status() -> None:
    assert violation_id("t", "api_calls", "2026-03-02", "warning") == stable_id(
        "t", "api_calls", "2026-03-02", "warning"
    )
