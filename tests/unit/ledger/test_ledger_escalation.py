"""Rule 6: strikes -> notice -> action -> cleared, end to end (hand-computed)."""

from __future__ import annotations

from ledger_support import DAY, Feed, enforcement, ms, violations

from fairuse.records import stable_id


def strike(feed: Feed, day: int) -> list:
    """Exceed the 10-calls-per-day limit on day ``day`` of 2026 (1-based)."""
    return feed.send("api_call", ms("2026-01-01T12:00") + (day - 1) * DAY, count=11)


def exceeded_id(day: int) -> str:
    period = f"2026-{1 + (day - 1) // 31:02d}-{1 + (day - 1) % 31:02d}"
    return stable_id("acme", "api_calls", period, "exceeded")


def test_escalation_ladder_end_to_end() -> None:
    feed = Feed(api_calls_per_day=10, notice_period_days=14, enforcement_action="charge")
    assert enforcement(strike(feed, 1)) == []  # one strike is below the threshold of 2

    records = strike(feed, 2)
    assert [r.status for r in violations(records)] == ["warning", "exceeded"]
    [notice] = enforcement(records)
    assert records[-1] is notice  # enforcement comes after the violations
    day2 = ms("2026-01-02T12:00")
    assert (notice.kind, notice.action, notice.ts, notice.effective_at) == (
        "notice",
        "charge",
        day2,
        day2 + 14 * DAY,
    )
    assert notice.strikes == (exceeded_id(1), exceeded_id(2))
    assert notice.enforcement_id == stable_id("acme", "notice", exceeded_id(1), exceeded_id(2))

    assert enforcement(strike(feed, 5)) == []  # before effective_at: counted, no action
    [action] = enforcement(strike(feed, 16))  # at effective_at (day 2 + 14 days)
    assert (action.kind, action.action) == ("action", "charge")


def test_action_carries_the_notice_action_and_clears_strikes() -> None:
    feed = Feed(api_calls_per_day=10, notice_period_days=14, enforcement_action="throttle")
    strike(feed, 1)
    [notice] = enforcement(strike(feed, 2))
    strike(feed, 5)
    [action] = enforcement(strike(feed, 16))
    day16 = ms("2026-01-16T12:00")
    assert (action.kind, action.action, action.ts, action.effective_at) == (
        "action",
        "throttle",
        day16,
        day16,
    )
    assert action.strikes == tuple(exceeded_id(d) for d in (1, 2, 5, 16))
    assert action.enforcement_id == stable_id("acme", "action", notice.enforcement_id)
    assert feed.state.strikes == [] and feed.state.pending is None
    assert action.until == ms("2026-01-17T00:00")  # the end of the day the action started
    # the next day's event lifts the throttle; cleared: the ladder starts again
    assert [e.kind for e in enforcement(strike(feed, 17))] == ["lifted"]
    [again] = enforcement(strike(feed, 18))
    assert again.kind == "notice"
    assert again.strikes == (exceeded_id(17), exceeded_id(18))


def test_strikes_outside_the_repeat_window_do_not_count() -> None:
    feed = Feed(api_calls_per_day=10, repeat_window_days=90)
    strike(feed, 1)
    assert enforcement(strike(feed, 91)) == []  # 90 days later: the first strike left the window
    assert [e.kind for e in enforcement(strike(feed, 92))] == ["notice"]


def test_excused_violations_are_not_strikes() -> None:
    feed = Feed(api_calls_per_day=10, repeat_threshold=1)
    t0 = ms("2026-01-01T00:00")
    feed.send("usage_notice", t0, notice_id="n", starts=t0, ends=t0 + 3 * DAY)
    assert enforcement(strike(feed, 1)) == []
    assert enforcement(strike(feed, 2)) == []
    assert feed.state.strikes == []
    assert [e.kind for e in enforcement(strike(feed, 4))] == ["notice"]


def test_zero_notice_period_acts_on_the_next_strike() -> None:
    feed = Feed(api_calls_per_day=10, notice_period_days=0, repeat_threshold=1)
    assert [e.kind for e in enforcement(strike(feed, 1))] == ["notice"]
    assert [e.kind for e in enforcement(strike(feed, 2))] == ["action"]
