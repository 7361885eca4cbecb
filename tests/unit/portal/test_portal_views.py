"""What the pages show, from given API answers and warehouse rows (pure)."""

from __future__ import annotations

import re

from fairuse.policy import Limits
from fairuse.portal.charts import standing_bar, status_of
from fairuse.portal.pages import amount, history, local_time, notices, standing

USAGE = {
    "tenant_id": "acme", "at": 1_764_590_400_000, "day": "2025-12-01", "month": "2025-12",
    "timezone": "Europe/Berlin", "policy_revision": "2021-01-12", "seats": 3,
    "open_sessions": [],
    "metrics": {
        "audio_hours": {"period": "2025-12", "observed": 600.0, "limit": 528.0,
                        "percent": 113.6, "unit": "hours"},
        "api_calls": {"period": "2025-12-01", "observed": 2000, "limit": 2400,
                      "percent": 83.3, "unit": "calls"},
    },
}  # fmt: skip


def test_amounts_carry_units_and_times_the_tenant_zone() -> None:
    assert amount(2401, "calls") == "2,401 calls"
    assert amount(12.345, "hours") == "12.35 h"
    assert amount(3.2, "calls_per_user") == "3.20 calls per user"
    assert local_time(1_764_590_400_000, "Europe/Berlin") == "2025-12-01 13:00 CET"
    assert local_time("2025-12-01 12:00:00.000", "Europe/Berlin") == "2025-12-01 13:00 CET"
    assert local_time(None, "UTC") == "—"


def test_standing_per_metric_with_status_days_left_and_decision() -> None:
    decision = {
        "metric": "api_calls", "action": "throttle", "allowed": False,
        "reason": {"text": "API calls over 2,400/day on 3 days; throttled until 2025-12-08",
                   "kind": "action", "effective_at": "2025-12-01T00:00:00+00:00",
                   "until": "2025-12-08T00:00:00+00:00"},
    }  # fmt: skip
    page = standing(USAGE, {"api_calls": decision}, [], Limits(timezone="Europe/Berlin"))
    audio, calls = page.metrics
    assert (audio.status, calls.status) == ("over", "warning")
    assert audio.left_text == "31 days left in 2025-12"
    assert calls.left_text == "resets 2025-12-02 00:00 CET"
    assert calls.warning_text == "1,920 calls"
    (action,) = page.actions
    assert action["kind"] == "Throttled" and action["until"] == "2025-12-08 01:00 CET"


def test_bar_lengths_follow_observed_against_limit() -> None:
    for observed, limit in ((0.0, 10.0), (5.0, 10.0), (12.0, 10.0)):
        svg = str(standing_bar(observed, limit, 0.8, "x"))
        fill = float(re.search(r'class="fill" x="0" y="4" width="([\d.]+)"', svg)[1])
        limit_x = float(re.search(r'class="limit-line" x1="([\d.]+)"', svg)[1])
        assert abs(fill / limit_x - observed / limit) < 0.01
    assert status_of(7.9, 10, 0.8) == "ok" and status_of(8, 10, 0.8) == "warning"


def test_history_puts_each_day_in_place_with_the_live_limit_of_the_same_month() -> None:
    rows = [
        {"day": "2025-12-01", "metric": "audio_hours", "amount": 2.5},
        {"day": "2025-12-03", "metric": "audio_hours", "amount": 1.5},
        {"day": "2025-12-03", "metric": "api_calls", "amount": 2401.0},
    ]
    audio, video, calls = history("2025-12", rows, USAGE)
    assert len(audio.days) == 31 and audio.days[2] == ("2025-12-03", 1.5, "1.50 h")
    assert audio.total_text == "4.00 h" and audio.limit == 528.0
    assert 'class="pace-line"' in audio.chart and 'class="pace-line"' not in calls.chart
    assert video.total_text == "0.00 h" and calls.limit == 2400.0
    (other_month, _, _) = history("2025-11", [], USAGE)
    assert other_month.limit == 0.0 and len(other_month.days) == 30
    closed = [{"metric": "audio_hours", "period": "2025-11", "limit": 352.0}]
    (other_month, _, _) = history("2025-11", [], USAGE, closed)
    assert other_month.limit == 352.0


def test_notices_show_each_target_s_delivery_in_the_tenant_zone() -> None:
    steps = [
        {"enforcement_id": "n1", "ts": "2025-12-03 09:00:00.000", "kind": "notice",
         "action": "throttle", "effective_at": "2025-12-05 00:00:00.000", "strikes": 2},
        {"enforcement_id": "a1", "ts": "2025-12-05 00:00:00.000", "kind": "action",
         "action": "throttle", "effective_at": "2025-12-05 00:00:00.000", "strikes": 2},
    ]  # fmt: skip
    deliveries = [
        {"record_id": "n1", "channel": "webhook", "target": "https://acme.example/hook",
         "state": "delivered", "delivered_at": "2025-12-03 09:00:02.000", "attempts": 3},
        {"record_id": "n1", "channel": "email", "target": "ops@acme.example",
         "state": "dead_lettered", "delivered_at": None, "attempts": 12},
    ]  # fmt: skip
    shown = notices(steps, deliveries, "Europe/Berlin")
    assert [s["enforcement_id"] for s in shown] == ["n1", "a1"]
    assert [s["kind"] for s in shown] == ["Advance notice", "Action"]
    assert shown[0]["effective"] == "2025-12-05 01:00 CET"
    webhook, email = shown[0]["deliveries"]
    assert (webhook["state"], webhook["delivered"], webhook["attempts"]) == (
        "delivered",
        "2025-12-03 10:00 CET",
        3,
    )
    assert (email["state"], email["delivered"], email["attempts"]) == ("dead_lettered", "—", 12)
    assert shown[1]["deliveries"] == []  # no delivery recorded for the action
