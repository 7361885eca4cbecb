"""Rule 1 (session accrual, expiry, held stops) with hand-computed expectations."""

from __future__ import annotations

from ledger_support import HOUR, MINUTE, Feed, accruals, dead, ms

from fairuse.ledger import usage_view
from fairuse.ledger.sessions import has_stopped


def hours(feed: Feed, metric: str = "audio_hours", month: str = "2026-03") -> float:
    return feed.state.periods[metric][month].weighted_ms / HOUR


def test_heartbeats_and_stop_accrue_time_since_last_accrual() -> None:
    feed = Feed()
    t0 = ms("2026-03-02T09:00")
    assert feed.start("s1", t0) == []
    [a] = accruals(feed.beat("s1", t0 + 10 * MINUTE))
    assert (a.raw_ms, a.weighted_ms, a.day, a.session_id, a.user_id) == (
        10 * MINUTE,
        10.0 * MINUTE,
        "2026-03-02",
        "s1",
        "u1",
    )
    [b] = accruals(feed.stop("s1", t0 + 25 * MINUTE))
    assert b.raw_ms == 15 * MINUTE
    assert b.metric == "audio_hours"
    row = feed.state.periods["audio_hours"]["2026-03"]
    assert (row.weighted_ms, row.raw_ms) == (25.0 * MINUTE, 25 * MINUTE)
    assert "s1" not in feed.state.sessions and has_stopped(feed.state, "s1")


def test_session_across_midnight_is_split_into_one_accrual_per_day() -> None:
    feed = Feed()
    t0 = ms("2026-03-31T23:00")
    feed.start("s1", t0)
    pieces = accruals(feed.stop("s1", t0 + 3 * HOUR))
    assert [(p.day, p.raw_ms) for p in pieces] == [("2026-03-31", HOUR), ("2026-04-01", 2 * HOUR)]
    assert {p.event_id for p in pieces} == {"acme-e2"}
    assert hours(feed) == 1.0
    assert hours(feed, month="2026-04") == 2.0


def test_session_across_berlin_dst_night_splits_at_local_midnight() -> None:
    feed = Feed(timezone="Europe/Berlin")
    start = ms("2026-03-28T22:00", "Europe/Berlin")
    feed.start("s1", start)
    pieces = accruals(feed.stop("s1", ms("2026-03-30T02:00", "Europe/Berlin")))
    assert [(p.day, p.raw_ms) for p in pieces] == [
        ("2026-03-28", 2 * HOUR),
        ("2026-03-29", 23 * HOUR),
        ("2026-03-30", 2 * HOUR),
    ]


def test_session_across_berlin_fall_back_night_counts_the_25_hour_day() -> None:
    feed = Feed(timezone="Europe/Berlin")
    feed.start("s1", ms("2026-10-24T23:00", "Europe/Berlin"), channels=2)
    pieces = accruals(feed.stop("s1", ms("2026-10-26T01:00", "Europe/Berlin")))
    assert [(p.day, p.raw_ms, p.weighted_ms) for p in pieces] == [
        ("2026-10-24", HOUR, 2.0 * HOUR),
        ("2026-10-25", 25 * HOUR, 50.0 * HOUR),
        ("2026-10-26", HOUR, 2.0 * HOUR),
    ]
    assert hours(feed, month="2026-10") == 54.0


def test_stereo_audio_and_4k_video_weights() -> None:
    feed = Feed()
    t0 = ms("2026-03-02T09:00")
    feed.start("a", t0, channels=2)
    feed.start("v", t0, media="video", width=3840, height=2160)
    feed.start("hd", t0, media="video", width=1280, height=720)
    assert accruals(feed.stop("a", t0 + HOUR))[0].weighted_ms == 2.0 * HOUR
    assert accruals(feed.stop("v", t0 + HOUR))[0].weighted_ms == 4.0 * HOUR
    [hd] = accruals(feed.stop("hd", t0 + HOUR))
    assert (hd.metric, hd.weighted_ms, hd.raw_ms) == ("video_hours", 1.0 * HOUR, HOUR)
    assert hours(feed) == 2.0
    assert hours(feed, "video_hours") == 5.0


def test_heartbeat_older_than_last_accrual_adds_nothing() -> None:
    feed = Feed()
    t0 = ms("2026-03-02T09:00")
    feed.start("s1", t0)
    feed.beat("s1", t0 + 20 * MINUTE)
    assert feed.beat("s1", t0 + 10 * MINUTE) == []
    assert accruals(feed.stop("s1", t0 + 30 * MINUTE))[0].raw_ms == 10 * MINUTE


def test_heartbeat_of_unknown_session_or_before_start_is_ignored() -> None:
    feed = Feed()
    t0 = ms("2026-03-02T09:00")
    assert feed.beat("ghost", t0) == []
    feed.start("s1", t0 + MINUTE)
    assert accruals(feed.stop("s1", t0 + 2 * MINUTE))[0].raw_ms == MINUTE
    assert "ghost" not in feed.state.sessions


def test_stop_before_its_start_is_held_and_counted_when_the_start_arrives() -> None:
    feed = Feed()
    t0 = ms("2026-03-02T09:00")
    assert feed.stop("s1", t0 + HOUR, event_id="stop-1") == []
    records = feed.start("s1", t0)
    [a] = accruals(records)
    assert (a.raw_ms, a.event_id) == (HOUR, "stop-1")
    assert dead(records) == []
    assert has_stopped(feed.state, "s1") and not feed.state.held_stops


def test_stop_earlier_than_its_start_is_dead_lettered() -> None:
    feed = Feed()
    t0 = ms("2026-03-02T09:00")
    feed.start("s1", t0)
    [letter] = feed.stop("s1", t0 - 1, event_id="bad-stop")
    assert (letter.reason, letter.event_id, letter.tenant_id, letter.ts) == (
        "stop_before_start",
        "bad-stop",
        "acme",
        t0 - 1,
    )
    assert letter.raw == feed.sent[-1].decode()
    assert letter.source == "test:2"
    assert "s1" in feed.state.sessions  # still open: its real stop may follow


def test_held_stop_earlier_than_the_start_is_dead_lettered_with_its_own_payload() -> None:
    feed = Feed()
    t0 = ms("2026-03-02T09:00")
    feed.stop("s1", t0 - MINUTE, event_id="early-stop")
    records = feed.start("s1", t0)
    [letter] = records
    assert (letter.reason, letter.event_id, letter.source) == (
        "stop_before_start",
        "early-stop",
        "test:1",
    )
    assert letter.raw == feed.sent[0].decode()
    assert "s1" in feed.state.sessions


def test_second_start_of_a_session_is_dead_lettered() -> None:
    feed = Feed()
    t0 = ms("2026-03-02T09:00")
    feed.start("s1", t0)
    [letter] = feed.start("s1", t0 + MINUTE, event_id="again")
    assert (letter.reason, letter.event_id) == ("duplicate_start", "again")
    feed.stop("s1", t0 + 2 * MINUTE)
    [letter] = feed.start("s1", t0 + 3 * MINUTE)  # after its stop too
    assert letter.reason == "duplicate_start"
    assert feed.state.periods["audio_hours"]["2026-03"].raw_ms == 2 * MINUTE


def test_stop_after_a_gap_longer_than_the_expiry_accrues_nothing_and_counts_late() -> None:
    feed = Feed(session_expiry_s=600)
    t0 = ms("2026-03-02T09:00")
    feed.start("s1", t0)
    feed.beat("s1", t0 + 5 * MINUTE)
    feed.ledger.expire_idle(t0 + 30 * MINUTE)
    state = feed.state
    assert state.sessions["s1"].status == 1
    view = usage_view(state, feed.ledger.policy, t0 + 30 * MINUTE)
    assert view["open_sessions"] == []
    assert accruals(feed.beat("s1", t0 + 40 * MINUTE)) == []  # 35 min gap: no phantom time
    assert accruals(feed.stop("s1", t0 + 45 * MINUTE)) == []  # not revived
    row = state.periods["audio_hours"]["2026-03"]
    assert (row.raw_ms, row.late) == (5 * MINUTE, 2)
    assert "s1" not in state.sessions
    [summary] = feed.ledger.summary()
    assert summary["late_after_expiry"] == 2


def test_expiry_by_newer_events_of_the_tenant_emits_nothing() -> None:
    feed = Feed(session_expiry_s=600)
    t0 = ms("2026-03-02T09:00")
    feed.start("s1", t0)
    feed.start("s2", t0 + 20 * MINUTE, user="u2")
    feed.beat("s2", t0 + 22 * MINUTE)
    assert feed.state.sessions["s1"].status == 1  # silent for 22 min > 10 min
    assert feed.state.sessions["s2"].status == 0
    view = usage_view(feed.state, feed.ledger.policy, t0 + 22 * MINUTE)
    assert view["open_sessions"] == ["s2"]
    # a heartbeat arriving late but within the expiry of the previous event reopens it
    [a] = accruals(feed.beat("s1", t0 + 9 * MINUTE))
    assert a.raw_ms == 9 * MINUTE
    assert feed.state.sessions["s1"].status == 0


def test_expire_idle_never_changes_output_records() -> None:
    t0 = ms("2026-03-02T09:00")
    plain, expiring = Feed(), Feed()
    outputs: dict[int, list] = {0: [], 1: []}
    for i, feed in enumerate((plain, expiring)):
        for step, action in enumerate(
            [
                lambda f: f.start("s1", t0),
                lambda f: f.beat("s1", t0 + MINUTE),
                lambda f: f.start("s2", t0 + HOUR),
                lambda f: f.stop("s1", t0 + 2 * HOUR),
                lambda f: f.stop("s2", t0 + 3 * HOUR),
            ]
        ):
            if i == 1:
                feed.ledger.expire_idle(t0 + step * HOUR)
            outputs[i].extend(action(feed))
    assert outputs[0] == outputs[1]
