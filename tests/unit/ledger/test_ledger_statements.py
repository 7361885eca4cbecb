"""Rule 7: a period closes into one statement once the tenant clock passes its end plus
``close_grace``; a late event for a closed period emits one adjustment, never a silent rewrite."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_support import DAY, HOUR, MINUTE, Feed, ms, policy

from fairuse.ledger import Ledger, TenantState, statements
from fairuse.ledger.statements import statement_id
from fairuse.records import Adjustment, OutputRecord, Statement


def stated(records: list[OutputRecord]) -> list[Statement]:
    return [r for r in records if isinstance(r, Statement)]


def adjusted(records: list[OutputRecord]) -> list[Adjustment]:
    return [r for r in records if isinstance(r, Adjustment)]


def test_a_month_closes_after_the_grace_and_a_late_event_gives_exactly_one_adjustment() -> None:
    feed = Feed(audio_hours_per_day=1, working_days_per_month=1)  # 1 h a month per seat
    feed.start("s1", ms("2026-03-10T08:00"))
    feed.stop("s1", ms("2026-03-10T10:00"))  # 2 h: exceeded
    # the clock reaches the end of March plus 48 h one millisecond too early, then exactly
    assert stated(feed.send("api_call", ms("2026-04-02T23:59:59.999"), count=1)) == []
    closing = feed.send("api_call", ms("2026-04-03T00:00"), count=1)
    (statement,) = [s for s in stated(closing) if s.metric == "audio_hours"]
    assert statement.statement_id == statement_id("acme", "audio_hours", "2026-03")
    assert (statement.period, statement.observed, statement.limit, statement.excess) == (
        "2026-03",
        2.0,
        1.0,
        1.0,
    )
    assert (statement.period_start, statement.period_end) == (
        "2026-03-01T00:00:00+00:00",
        "2026-04-01T00:00:00+00:00",
    )
    assert statement.unit == "hours" and statement.seats == 1.0
    assert statement.closed_at == ms("2026-04-03T00:00")
    assert len(statement.violation_ids) == 2  # warning, exceeded
    assert statement.policy_revision == "r1"
    feed.send("api_call", ms("2026-04-20T00:00"), count=1)

    # a late session of March: counted, and one adjustment names its statement and its cause
    feed.start("late", ms("2026-03-20T08:00"), event_id="late-start")
    records = feed.stop("late", ms("2026-03-20T08:30"), event_id="late-stop")
    (adjustment,) = adjusted(records)
    assert stated(records) == []
    assert adjustment.statement_id == statement.statement_id
    assert (adjustment.delta_observed, adjustment.delta_excess) == (0.5, 0.5)
    assert adjustment.delta_announced == 0.0
    assert adjustment.caused_by == "late-stop"
    assert adjustment.at == ms("2026-04-20T00:00")  # the tenant clock
    summary = {(r["metric"], r["period"]): r["observed"] for r in feed.ledger.summary()}
    assert summary[("audio_hours", "2026-03")] == 2.5
    # the same event again is a duplicate: nothing
    assert feed.stop("late", ms("2026-03-20T08:30"), event_id="late-stop") == []


def test_a_closed_day_of_api_calls_is_adjusted_per_late_event_with_distinct_ids() -> None:
    feed = Feed(api_calls_per_day=10)
    feed.send("api_call", ms("2026-03-05T10:00"), count=9)
    (statement,) = stated(feed.send("api_call", ms("2026-03-08T00:00"), count=1))
    assert (statement.period, statement.observed, statement.excess) == ("2026-03-05", 9.0, 0.0)
    first = adjusted(feed.send("api_call", ms("2026-03-05T11:00"), count=3))
    second = adjusted(feed.send("api_call", ms("2026-03-05T12:00"), count=1))
    assert [(a.delta_observed, a.delta_excess) for a in first + second] == [(3.0, 2.0), (1.0, 1.0)]
    assert first[0].adjustment_id != second[0].adjustment_id


def test_a_period_first_seen_after_its_close_time_gets_its_statement_at_once() -> None:
    feed = Feed()
    feed.send("api_call", ms("2026-03-10T00:00"), count=1)
    records = feed.send("api_call", ms("2026-03-01T00:00"), count=4)  # no row for 03-01 yet
    assert [(s.period, s.observed) for s in stated(records)] == [("2026-03-01", 4.0)]
    assert adjusted(records) == []


def test_close_grace_is_a_policy_setting() -> None:
    feed = Feed(close_grace=0)
    feed.send("api_call", ms("2026-03-05T10:00"), count=1)
    assert stated(feed.send("api_call", ms("2026-03-05T23:59:59.999"), count=1)) == []
    (statement,) = stated(feed.send("api_call", ms("2026-03-06T00:00"), count=1))
    assert statement.observed == 2.0


def test_usage_inside_a_prior_notice_is_announced_not_excess() -> None:
    feed = Feed(audio_hours_per_day=1, working_days_per_month=1)
    feed.send(
        "usage_notice",
        ms("2026-03-01T00:00"),
        notice_id="n1",
        starts=ms("2026-03-10T00:00"),
        ends=ms("2026-03-11T00:00"),
        metrics=["audio_hours"],
    )
    feed.start("s1", ms("2026-03-10T08:00"))
    feed.stop("s1", ms("2026-03-10T11:00"))
    (statement,) = [
        s for s in stated(feed.send("api_call", ms("2026-04-03T00:00"))) if s.metric != "api_calls"
    ]
    assert (statement.observed, statement.announced, statement.excess) == (0.0, 3.0, 0.0)


def test_per_user_allowance_bills_each_users_excess() -> None:
    feed = Feed(audio_hours_per_day=1, working_days_per_month=1, allowance="per_user")
    for user in ("u1", "u2"):
        feed.send("user_activated", ms("2026-02-20T00:00"), user_id=user)
    feed.start("a", ms("2026-03-10T08:00"), user="u1")
    feed.stop("a", ms("2026-03-10T11:00"))  # u1: 3 h against 1 h
    feed.start("b", ms("2026-03-11T08:00"), user="u2")
    feed.stop("b", ms("2026-03-11T08:30"))  # u2: 0.5 h
    (statement,) = [
        s for s in stated(feed.send("api_call", ms("2026-04-03T00:00"))) if s.metric != "api_calls"
    ]
    assert (statement.observed, statement.limit, statement.excess) == (3.5, 2.0, 2.0)
    assert len(statement.violation_ids) == 2  # u1's warning and exceeded


def test_closed_figures_are_forgotten_with_their_period_but_the_period_stays_closed() -> None:
    feed = Feed(api_calls_per_day=10)
    feed.send("api_call", ms("2026-03-05T10:00"), count=4)
    assert len(stated(feed.send("api_call", ms("2026-03-08T00:00")))) == 1
    feed.send("api_call", ms("2026-07-15T00:00"))  # the daily upkeep forgets March (100 days)
    assert ("api_calls", "2026-03-05") not in feed.state.closed
    assert feed.state.closed_before == "2026-04"
    records = feed.send("api_call", ms("2026-03-05T11:00"), count=20)
    assert stated(records) == []  # never a second statement for the period
    (adjustment,) = adjusted(records)
    assert adjustment.statement_id == statement_id("acme", "api_calls", "2026-03-05")
    assert adjustment.delta_observed == 20.0


def test_closed_figures_survive_the_state_bytes() -> None:
    feed = Feed()
    feed.send("api_call", ms("2026-03-05T10:00"))
    feed.send("api_call", ms("2026-03-08T00:00"))
    state = feed.state
    again = TenantState.from_bytes(state.to_bytes(), feed.ledger.keys)
    assert again == state and again.closed and again.next_close_ms == state.next_close_ms


START = ms("2026-03-01T00:00")
SPAN = 61 * DAY  # March and April
events_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("api"), st.integers(0, SPAN - 1), st.integers(1, 900)),
        st.tuples(st.just("session"), st.integers(0, SPAN - 1), st.integers(1, 6 * 60)),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(events_strategy, st.integers(0, 72))
def test_statement_plus_adjustments_equals_the_replay_of_all_events(
    events: list[tuple[str, int, int]], grace: int
) -> None:
    """In any arrival order: each closed period's statement plus its adjustments is what the
    ledger counted of all its events, and its excess is what the final figure exceeds."""
    limits = {"audio_hours_per_day": 1, "working_days_per_month": 1, "close_grace": grace}
    feed = Feed(Ledger(policy(**limits)))
    records: list[OutputRecord] = []
    for i, (kind, offset, size) in enumerate(events):
        ts = START + offset
        if kind == "api":
            records += feed.send("api_call", ts, count=size)
        else:
            records += feed.start(f"s{i}", ts)
            records += feed.stop(f"s{i}", ts + size * MINUTE)
    records += feed.send("api_call", START + SPAN + 30 * DAY)  # closes every earlier period
    final = {(r["metric"], r["period"]): r["observed"] for r in feed.ledger.summary()}
    statements = {s.statement_id: s for s in stated(records)}
    assert len(statements) == len(stated(records))  # one per tenant, metric and period
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for adjustment in adjusted(records):
        assert adjustment.statement_id in statements
        totals[adjustment.statement_id][0] += adjustment.delta_observed
        totals[adjustment.statement_id][1] += adjustment.delta_excess
    closed = {(s.metric, s.period) for s in statements.values()}
    assert closed == {key for key in final if key[1] < "2026-05"}  # every period seen
    for sid, statement in statements.items():
        observed = statement.observed + totals[sid][0]
        assert observed == pytest.approx(final[(statement.metric, statement.period)], abs=1e-9)
        excess = statement.excess + totals[sid][1]
        assert excess == pytest.approx(max(0.0, observed - statement.limit), abs=1e-9)


def test_the_same_events_give_the_same_statements_and_ids() -> None:
    def run() -> list[OutputRecord]:
        feed = Feed(api_calls_per_day=3)
        out: list[OutputRecord] = []
        for hour in range(0, 24 * 10, 7):
            out += feed.send("api_call", ms("2026-03-01T00:00") + hour * HOUR, count=2)
        out += feed.send("api_call", ms("2026-03-02T05:00"), count=2)
        return [r for r in out if isinstance(r, Statement | Adjustment)]

    first = run()
    assert first and first == run()


def test_periods_known_open_are_forgotten_when_the_next_close_or_the_calendar_changes() -> None:
    feed = Feed(api_calls_per_day=100)
    feed.send("api_call", ms("2026-03-10T08:00"), count=1)  # the next close: 13 Mar, 00:00 UTC
    for hour in (8, 9, 10):
        feed.send("api_call", ms(f"2026-03-12T{hour:02}:00"), count=1)
    state = feed.state
    day = ("api_calls", "2026-03-12")  # a UTC day ending at that close: known to stay open
    assert state.open_until_close == {day} and statements.nothing_due(state, [day])
    feed.ledger.policy = policy(api_calls_per_day=100, timezone="Asia/Tokyo")
    feed.send("api_call", ms("2026-03-12T11:00"), count=1)  # 12 Mar in Tokyo ends 15:00 UTC
    assert not state.open_until_close and not statements.nothing_due(state, [day])
    assert statements.nothing_due(state, None)
    closing = feed.send("api_call", ms("2026-03-13T00:00"), count=1)
    assert [s.period for s in stated(closing)] == ["2026-03-10"]
    assert not state.open_until_close  # the next close moved: what was known is forgotten
