"""The numbered cases of issue 9 (policy fidelity), each run through ``fairuse replay``."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from fairuse.policy import DEFAULT_POLICY, Limits, Policy, Revision
from fairuse.replay import replay

HOUR = 3_600_000
DAY = 24 * HOUR


def ms(text: str, zone: str = "UTC") -> int:
    """Epoch ms of a local ISO date-time in ``zone``."""
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp() * 1000)


class Events:
    """Events of one tenant, with generated ids, replayed at once."""

    def __init__(self, tenant: str = "acme") -> None:
        self.tenant = tenant
        self.lines: list[bytes] = []

    def add(self, kind: str, at: str | int, **fields: Any) -> Events:
        ts = ms(at) if isinstance(at, str) else at
        obj = {
            "type": kind,
            "event_id": f"e{len(self.lines) + 1}",
            "tenant_id": self.tenant,
            "ts": ts,
            **fields,
        }
        self.lines.append(orjson.dumps(obj))
        return self

    def run(self, policy: Policy = DEFAULT_POLICY) -> list[dict[str, Any]]:
        out = io.BytesIO()
        numbered = ((line, f"test:{i}") for i, line in enumerate(self.lines, 1))
        replay(numbered, out, policy, summary=True)
        return [orjson.loads(line) for line in out.getvalue().splitlines()]


def of(records: list[dict[str, Any]], topic: str) -> list[dict[str, Any]]:
    return [r for r in records if r["topic"] == topic]


def summary(records: list[dict[str, Any]], metric: str, period: str) -> dict[str, Any]:
    return next(
        r for r in of(records, "summary") if r["metric"] == metric and r["period"] == period
    )


def test_case_1_phantom_hours_a_gap_longer_than_the_expiry_accrues_nothing() -> None:
    records = (
        Events()
        .add("session_started", "2026-03-02T09:00", session_id="s1", user_id="u1", media="audio")
        .add("session_heartbeat", "2026-03-02T09:01", session_id="s1")
        .add("session_heartbeat", "2026-03-04T09:00", session_id="s1")
        .add("session_stopped", "2026-03-04T09:01", session_id="s1")
        .run()
    )
    row = summary(records, "audio_hours", "2026-03")
    assert row["raw_hours"] == 1 / 60  # 09:00-09:01 only
    assert row["late_after_expiry"] == 2  # the heartbeat after the gap, and the stop
    assert not of(records, "fairuse.violations")


LOWER_AUDIO_FROM_APRIL = Policy(
    [
        Revision("2021-01-12", ms("2021-01-12T00:00"), Limits()),
        Revision("2026-04-01", ms("2026-04-01T00:00"), Limits(audio_hours_per_day=4)),
    ]
)


def test_case_2_retroactive_limits_march_is_judged_by_the_revision_in_force_on_march_1() -> None:
    events = Events().add(
        "session_started", "2026-03-01T00:00", session_id="s1", user_id="u1", media="audio"
    )
    at = ms("2026-03-01T00:00")
    while at < ms("2026-04-02T00:00"):  # a heartbeat every 5 minutes, across March 31 -> April 1
        at += 5 * 60_000
        events.add("session_heartbeat", at, session_id="s1")
    records = events.run(LOWER_AUDIO_FROM_APRIL)
    march = [v for v in of(records, "fairuse.violations") if v["period"] == "2026-03"]
    assert {v["policy_revision"] for v in march} == {"2021-01-12"}
    assert {v["limit"] for v in march} == {176.0}
    april = [v for v in of(records, "fairuse.violations") if v["period"] == "2026-04"]
    assert april == []  # 24 h in April against 88 h: below the warning threshold


def _month_of_recording(events: Events, users: tuple[str, ...], hours: float) -> None:
    """``hours`` of audio spread over March's working hours by ``users`` (heartbeat each 10 min)."""
    per_user = hours / len(users)
    for i, user in enumerate(users):
        sid = f"s-{user}"
        start = ms("2026-03-02T08:00") + i * 60_000
        events.add("session_started", start, session_id=sid, user_id=user, media="audio")
        at, left = start, per_user * HOUR
        day = 0
        while left > 0:
            step = min(10 * 60_000, left)
            at += step
            left -= step
            events.add("session_heartbeat", int(at), session_id=sid)
            if (at - start - day * DAY) >= 10 * HOUR:  # ten hours a day, then the next day
                day += 1
                events.add("session_stopped", int(at), session_id=sid)
                sid = f"s-{user}-{day}"
                at = start + day * DAY
                events.add("session_started", int(at), session_id=sid, user_id=user, media="audio")
        events.add("session_stopped", int(at), session_id=sid)


def test_case_3a_seats_averaged_deactivating_a_user_on_the_last_day_flags_nothing() -> None:
    events = Events()
    events.add("user_activated", "2026-03-01T00:00", user_id="u1")
    events.add("user_activated", "2026-03-01T00:00", user_id="u2")
    _month_of_recording(events, ("u1", "u2"), 300)
    events.add("user_deactivated", "2026-03-31T17:00", user_id="u2")
    records = events.run()
    statuses = [(v["metric"], v["status"]) for v in of(records, "fairuse.violations")]
    assert ("audio_hours", "exceeded") not in statuses
    row = summary(records, "audio_hours", "2026-03")
    assert row["limit"] == 352.0  # two seats all month up to the deactivation: 2 x 176 h


def test_case_3b_seats_averaged_activating_an_idle_user_late_hides_no_excess() -> None:
    events = Events()
    events.add("user_activated", "2026-03-01T00:00", user_id="u1")
    _month_of_recording(events, ("u1",), 200)  # 200 h against 176 h
    events.add("user_activated", "2026-03-30T00:00", user_id="idle")
    records = events.run()
    [exceeded] = [v for v in of(records, "fairuse.violations") if v["status"] == "exceeded"]
    assert exceeded["metric"] == "audio_hours"
    assert 1 <= exceeded["seats"] < 1.1


def policy_with(**values: Any) -> Policy:
    """A one-revision policy: the default limits with ``values`` changed."""
    return Policy([Revision("r1", ms("2021-01-12T00:00"), Limits(**values))])


def enforcement_of(records: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["kind"], len(e["strikes"])) for e in of(records, "fairuse.enforcement")]


def test_case_5_a_late_event_gives_a_notice_counted_from_the_tenant_clock() -> None:
    records = (
        Events()
        .add("api_call", "2026-03-02T10:00", count=2401)
        .add("api_call", "2026-03-20T10:00", count=1)  # the tenant clock moves on
        .add("api_call", "2026-03-03T10:00", count=2401)  # late: a strike on March 3
        .run()
    )
    [notice] = of(records, "fairuse.enforcement")
    assert notice["kind"] == "notice"
    assert notice["ts"] == ms("2026-03-03T10:00")
    assert notice["effective_at"] == ms("2026-03-20T10:00") + 14 * DAY  # not already due


def test_case_6_a_notice_lapses_and_a_strike_eleven_months_later_starts_again() -> None:
    records = (
        Events()
        .add("api_call", "2026-03-02T10:00", count=2401)
        .add("api_call", "2026-03-03T10:00", count=2401)  # notice, effective March 17
        .add("api_call", "2027-02-03T10:00", count=2401)  # eleven months later
        .run()
    )
    assert enforcement_of(records) == [("notice", 2), ("lapsed", 0)]
    lapsed = of(records, "fairuse.enforcement")[1]
    assert lapsed["effective_at"] == ms("2026-03-17T10:00") + 90 * DAY
    assert lapsed["ts"] == ms("2027-02-03T10:00")


def test_case_7a_one_roster_event_pushing_two_metrics_over_is_one_strike() -> None:
    tight = policy_with(audio_hours_per_day=1, video_hours_per_day=1, working_days_per_month=1)
    events = Events()
    events.add("user_activated", "2026-03-02T08:00", user_id="u1")
    events.add("user_activated", "2026-03-02T08:00", user_id="u2")
    for media in ("audio", "video"):  # 1.5 h each: 75 % of 2 seats x 1 h
        sid = f"s-{media}"
        events.add("session_started", "2026-03-02T08:00", session_id=sid, user_id="u1", media=media)
        for minutes in range(10, 91, 10):
            events.add(
                "session_heartbeat", ms("2026-03-02T08:00") + minutes * 60_000, session_id=sid
            )
        events.add("session_stopped", "2026-03-02T09:30", session_id=sid)
    events.add("user_deactivated", "2026-03-02T09:30", user_id="u2")
    events.add("user_activated", "2026-03-04T09:30", user_id="u3")  # seats now about 1.03
    records = events.run(tight)
    exceeded = [v["metric"] for v in of(records, "fairuse.violations") if v["status"] == "exceeded"]
    assert sorted(exceeded) == ["audio_hours", "video_hours"]
    assert enforcement_of(records) == []  # one strike: no notice


def test_case_7b_calls_at_23_30_and_00_30_are_strikes_on_two_local_days() -> None:
    records = (
        Events()
        .add("api_call", "2026-03-02T23:30", count=2401)
        .add("api_call", "2026-03-02T23:40", count=1)
        .add("api_call", "2026-03-03T00:30", count=2401)
        .run()
    )
    # two separate local days, two periods exceeded: repeated, so a notice (never an action)
    assert enforcement_of(records) == [("notice", 2)]


def test_one_strike_per_local_day_however_many_limits_are_exceeded() -> None:
    tight = policy_with(audio_hours_per_day=0.01, working_days_per_month=1, repeat_threshold=2)
    records = (
        Events()
        .add("api_call", "2026-03-02T10:00", count=2401)
        .add("session_started", "2026-03-02T11:00", session_id="s", user_id="u", media="audio")
        .add("session_stopped", "2026-03-02T11:05", session_id="s")
        .run(tight)
    )
    exceeded = [v["metric"] for v in of(records, "fairuse.violations") if v["status"] == "exceeded"]
    assert exceeded == ["api_calls", "audio_hours"]
    assert enforcement_of(records) == []


def _notice(events: Events, at: str, starts: str, ends: str, **extra: Any) -> Events:
    return events.add(
        "usage_notice",
        at,
        notice_id=f"n{len(events.lines)}",
        starts=ms(starts),
        ends=ms(ends),
        **extra,
    )


def test_case_8a_a_notice_covering_a_century_excuses_nothing_and_says_why() -> None:
    events = Events()
    _notice(events, "2026-03-01T00:00", "2000-01-01T00:00", "2099-01-01T00:00")
    records = events.add("api_call", "2026-03-02T10:00", count=2401).run()
    [letter] = of(records, "fairuse.dead-letter")
    assert letter["reason"] == "notice_out_of_bounds"
    assert "notice_max_length is 14 days" in letter["detail"]
    assert [v["status"] for v in of(records, "fairuse.violations")] == ["warning", "exceeded"]


def test_case_8b_a_notice_two_hours_before_the_burst_is_not_prior_notice() -> None:
    events = Events()
    _notice(events, "2026-03-02T08:00", "2026-03-02T10:00", "2026-03-02T20:00")
    records = events.add("api_call", "2026-03-02T10:00", count=2401).run()
    [letter] = of(records, "fairuse.dead-letter")
    assert "arrived 2 h before its start; notice_min_lead is 24 h" in letter["detail"]
    assert [v["status"] for v in of(records, "fairuse.violations")] == ["warning", "exceeded"]


def test_case_8c_daily_api_periods_inside_a_notice_within_bounds_are_excused() -> None:
    events = Events()
    _notice(events, "2026-02-28T08:00", "2026-03-02T00:00", "2026-03-03T00:00")
    records = events.add("api_call", "2026-03-02T10:00", count=2401).run()
    assert not of(records, "fairuse.dead-letter")
    assert [v["status"] for v in of(records, "fairuse.violations")] == ["warning", "excused"]


def test_case_8d_announced_monthly_usage_is_left_out_of_the_compared_total() -> None:
    tight = policy_with(audio_hours_per_day=1, working_days_per_month=1)  # 1 h a month
    events = Events()
    _notice(
        events, "2026-03-01T00:00", "2026-03-02T09:00", "2026-03-02T11:00", metrics=["audio_hours"]
    )
    events.add("session_started", "2026-03-02T09:00", session_id="s", user_id="u", media="audio")
    for minutes in range(10, 131, 10):  # 09:00-11:10: 2 h announced, 10 min not
        events.add("session_heartbeat", ms("2026-03-02T09:00") + minutes * 60_000, session_id="s")
    records = events.run(tight)
    assert of(records, "fairuse.violations") == []  # 10 min against 1 h
    row = summary(records, "audio_hours", "2026-03")
    assert row["announced"] == 2.0
    assert row["observed"] == 10 / 60
    assert row["raw_hours"] == 130 / 60


def test_case_10_actions_name_the_metrics_the_excess_and_when_a_throttle_ends() -> None:
    records = (
        Events()
        .add("api_call", "2026-03-02T10:00", count=2401)
        .add("api_call", "2026-03-03T10:00", count=2402)  # notice, effective March 17 10:00
        .add("api_call", "2026-03-18T10:00", count=2500)  # action: throttle to March 19
        .add("api_call", "2026-03-19T00:00", count=1)  # the clock reaches until: lifted
        .run()
    )
    notice, action, lifted = of(records, "fairuse.enforcement")
    assert [m["excess"] for m in notice["metrics"]] == [1, 2]
    assert action["kind"] == "action" and action["action"] == "throttle"
    assert action["metrics"] == [
        {
            "metric": "api_calls",
            "period": f"2026-03-0{d}" if d < 10 else f"2026-03-{d}",
            "observed": observed,
            "limit": 2400,
            "excess": observed - 2400,
            "unit": "calls",
        }
        for d, observed in ((2, 2401), (3, 2402), (18, 2500))
    ]
    assert action["until"] == ms("2026-03-19T00:00")  # the end of the period it starts in
    assert (lifted["kind"], lifted["effective_at"]) == ("lifted", ms("2026-03-19T00:00"))
    assert lifted["strikes"] == [] and lifted["until"] is None


def test_case_10_throttle_days_sets_how_long_a_throttle_lasts_and_charge_has_no_until() -> None:
    week = policy_with(throttle_days=7)
    records = (
        Events()
        .add("api_call", "2026-03-02T10:00", count=2401)
        .add("api_call", "2026-03-03T10:00", count=2401)
        .add("api_call", "2026-03-18T10:00", count=2401)
        .run(week)
    )
    action = of(records, "fairuse.enforcement")[-1]
    assert action["until"] == ms("2026-03-25T10:00")
    charge = policy_with(enforcement_action="charge")
    records = (
        Events()
        .add("api_call", "2026-03-02T10:00", count=2401)
        .add("api_call", "2026-03-03T10:00", count=2401)
        .add("api_call", "2026-03-18T10:00", count=2450)
        .run(charge)
    )
    action = of(records, "fairuse.enforcement")[-1]
    assert (action["action"], action["until"]) == ("charge", None)
    assert [m["excess"] for m in action["metrics"]] == [1, 1, 50]


def test_throttled_until_is_what_a_gateway_reads() -> None:
    from fairuse.ledger import Ledger, throttled_until

    ledger = Ledger(DEFAULT_POLICY)
    for i, (at, count) in enumerate(
        (("2026-03-02T10:00", 2401), ("2026-03-03T10:00", 2401), ("2026-03-18T10:00", 2401))
    ):
        event = {"type": "api_call", "event_id": f"e{i}", "tenant_id": "t", "ts": ms(at)}
        ledger.process(orjson.dumps({**event, "count": count}), f"x:{i}")
    state = ledger.states["t"]
    assert throttled_until(state, ms("2026-03-18T12:00")) == ms("2026-03-19T00:00")
    assert throttled_until(state, ms("2026-03-19T00:00")) is None


def test_case_4_four_channel_audio_is_metered_and_orphans_of_a_rejected_start_are_reported() -> (
    None
):
    events = Events()
    events.add(
        "session_started",
        "2026-03-02T09:00",
        session_id="s4",
        user_id="u",
        media="audio",
        channels=4,
    )
    events.add("session_heartbeat", "2026-03-02T09:10", session_id="s4")
    events.add("session_stopped", "2026-03-02T09:20", session_id="s4")
    events.add(
        "session_started",
        "2026-03-02T10:00",
        session_id="s9",
        user_id="u",
        media="audio",
        channels=9,
    )
    events.add("session_heartbeat", "2026-03-02T10:10", session_id="s9")
    events.add("session_stopped", "2026-03-02T10:20", session_id="s9")
    records = events.run()
    assert summary(records, "audio_hours", "2026-03")["observed"] == 4 * 20 / 60
    assert [(d["reason"], d["event_id"]) for d in of(records, "fairuse.dead-letter")] == [
        ("out_of_range", "e4"),
        ("rejected_session", "e5"),
        ("rejected_session", "e6"),
    ]


def test_a_stop_held_for_a_start_that_is_then_rejected_is_reported() -> None:
    events = Events()
    events.add("session_stopped", "2026-03-02T10:20", session_id="s9")
    events.add(
        "session_started",
        "2026-03-02T10:00",
        session_id="s9",
        user_id="u",
        media="audio",
        channels=9,
    )
    records = events.run()
    assert [(d["reason"], d["event_id"]) for d in of(records, "fairuse.dead-letter")] == [
        ("out_of_range", "e2"),
        ("rejected_session", "e1"),
    ]


def test_flat_channel_weighting_counts_stereo_like_mono() -> None:
    events = Events()
    events.add(
        "session_started",
        "2026-03-02T09:00",
        session_id="s",
        user_id="u",
        media="audio",
        channels=2,
    )
    events.add("session_stopped", "2026-03-02T09:10", session_id="s")
    flat = events.run(policy_with(channel_weighting="flat"))
    assert summary(flat, "audio_hours", "2026-03")["observed"] == 10 / 60
    per_channel = events.run()
    assert summary(per_channel, "audio_hours", "2026-03")["observed"] == 20 / 60


def test_per_user_allowance_measures_each_users_own_hours_and_names_the_user() -> None:
    tight = policy_with(audio_hours_per_day=1, working_days_per_month=1, allowance="per_user")
    events = Events()
    for user in ("u1", "u2"):
        events.add("user_activated", "2026-03-02T08:00", user_id=user)
    events.add("session_started", "2026-03-02T09:00", session_id="a", user_id="u1", media="audio")
    events.add("session_started", "2026-03-02T09:00", session_id="b", user_id="u2", media="audio")
    for minutes in range(10, 71, 10):  # u1: 70 min; u2: 10 min
        events.add("session_heartbeat", ms("2026-03-02T09:00") + minutes * 60_000, session_id="a")
    events.add("session_heartbeat", "2026-03-02T09:10", session_id="b")
    records = events.run(tight)
    found = [(v["status"], v["user_id"], v["limit"]) for v in of(records, "fairuse.violations")]
    assert found == [("warning", "u1", 1.0), ("exceeded", "u1", 1.0)]  # pooled 80 min < 2 h
    own = [r for r in of(records, "summary") if r.get("user_id") == "u1"]
    assert own[0]["observed"] == 70 / 60
