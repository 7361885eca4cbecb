"""The gateway decision (pure): notice, throttle with Retry-After, lift; remaining; headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ledger_support import DAY, Feed, ms

from fairuse.events import METRICS
from fairuse.ledger.decision import decide, ratelimit_headers, retry_after_s


def calls(feed: Feed, day: int, count: int) -> None:
    """``count`` API calls at noon of day ``day`` of January 2026."""
    feed.send("api_call", ms("2026-01-01T12:00") + (day - 1) * DAY, count=count)


def throttled_feed() -> Feed:
    """A tenant throttled from Jan 16, noon, for 3 days (notice after strikes on days 1 and 2)."""
    feed = Feed(api_calls_per_day=10, notice_period_days=14, throttle_days=3)
    for day in (1, 2, 16):
        calls(feed, day, 11)
    return feed


def test_a_pending_notice_is_a_reason_but_allows() -> None:
    feed = Feed(api_calls_per_day=10, notice_period_days=14)
    calls(feed, 1, 11)
    assert decide(feed.state, feed.ledger.policy, "api_calls")["reason"] is None
    calls(feed, 2, 11)
    decision = decide(feed.state, feed.ledger.policy, "api_calls")
    assert (decision["allowed"], decision["action"], decision["until"]) == (True, "none", None)
    reason = decision["reason"]
    assert (
        reason["kind"] == "notice" and reason["enforcement_id"] == feed.state.pending.enforcement_id
    )
    assert (
        reason["effective_at"] == "2026-01-16T12:00:00+00:00" and len(reason["violation_ids"]) == 2
    )
    assert reason["text"].startswith("Advance notice: API calls over the limit on 2 days")
    assert "Retry-After" not in ratelimit_headers({**decision, "cache_max_age_s": 5})


def test_a_throttle_denies_every_metric_until_it_is_lifted() -> None:
    feed = throttled_feed()
    policy = feed.ledger.policy
    for metric in METRICS:
        decision = decide(feed.state, policy, metric)
        assert (decision["allowed"], decision["action"]) == (False, "throttle")
        assert decision["until_ms"] == ms("2026-01-19T12:00")
        assert decision["reason"]["kind"] == "action"
        assert decision["reason"]["effective_at"] == "2026-01-16T12:00:00+00:00"
        assert len(decision["reason"]["violation_ids"]) == 3
        assert retry_after_s(decision) == 3 * 86_400
    calls(feed, 18, 1)  # a day before until: Retry-After counts down on the tenant clock
    decision = decide(feed.state, policy, "api_calls")
    headers = ratelimit_headers({**decision, "cache_max_age_s": 5})
    assert (
        headers["Retry-After"] == str(86_400) and headers["RateLimit"] == '"api_calls";r=0;t=86400'
    )
    assert headers["Cache-Control"] == "max-age=5"
    calls(feed, 19, 1)  # the tenant clock reaches until: lifted
    decision = decide(feed.state, policy, "api_calls")
    assert (decision["allowed"], decision["action"], decision["reason"]) == (True, "none", None)
    assert retry_after_s(decision) is None


def test_an_unknown_metric_is_refused() -> None:
    feed = Feed()
    calls(feed, 1, 1)
    with pytest.raises(ValueError, match="unknown metric"):
        decide(feed.state, feed.ledger.policy, "stored_calls")


@given(limit=st.integers(1, 5_000), counts=st.lists(st.integers(1, 3_000), min_size=1, max_size=5))
def test_remaining_is_the_limit_less_observed_never_negative(limit: int, counts: list[int]) -> None:
    feed = Feed(api_calls_per_day=limit, repeat_threshold=99)
    for count in counts:
        calls(feed, 1, count)
    decision = decide(feed.state, feed.ledger.policy, "api_calls")
    observed = float(sum(counts))
    assert decision["observed"] == observed and decision["limit"] == limit
    assert decision["remaining"] == max(0.0, limit - observed)
    assert decision["allowed"]  # over the limit is not a throttle without notice and action
    assert decision["resets_at"] == "2026-01-02T00:00:00+00:00"
    headers = ratelimit_headers({**decision, "cache_max_age_s": 0})
    assert headers["RateLimit-Policy"] == f'"api_calls";q={limit};w=86400'
    assert headers["RateLimit"] == f'"api_calls";r={max(0, limit - int(observed))};t=43200'


@given(days_after=st.integers(0, 2), hour=st.integers(0, 23), millis=st.integers(0, 3_599_999))
def test_retry_after_reaches_until_and_is_never_below_one(
    days_after: int, hour: int, millis: int
) -> None:
    feed = throttled_feed()
    at = ms("2026-01-16T12:00") + days_after * DAY + hour * 3_600_000 + millis  # < until
    feed.send("api_call", at, count=1)
    decision = decide(feed.state, feed.ledger.policy, "video_hours")
    retry = retry_after_s(decision)
    assert retry is not None and retry >= 1
    assert at + (retry - 1) * 1000 < decision["until_ms"] <= at + retry * 1000
