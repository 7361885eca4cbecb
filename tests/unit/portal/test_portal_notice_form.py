"""The prior-notice form: the policy's bounds, messages for bad input, deterministic ids."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from fairuse.events import parse_event
from fairuse.ledger.notices import out_of_bounds
from fairuse.policy import Limits
from fairuse.portal.notice_form import submission_ids, validate

BERLIN = dataclasses.replace(Limits(), timezone="Europe/Berlin")
NOW = int(datetime(2026, 11, 27, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp() * 1000)
SUBMISSION = "s" * 24


def form(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "starts": "2026-12-01T08:00",
        "ends": "2026-12-03T18:00",
        "metrics": ["api_calls", "audio_hours"],
        "reason": "Quarter-end campaign",
        "submission": SUBMISSION,
    }
    return {**base, **changes}


def test_a_valid_form_is_one_usage_notice_in_the_tenant_time_zone() -> None:
    request, errors = validate("acme", form(), BERLIN, NOW)
    assert errors == {} and request is not None
    event = request.event
    assert (
        event.starts == int(datetime(2026, 12, 1, 7, 0, tzinfo=ZoneInfo("UTC")).timestamp()) * 1000
    )
    assert event.metrics == ("audio_hours", "api_calls") and event.ts == NOW
    assert (event.event_id, event.notice_id) == submission_ids("acme", SUBMISSION)
    assert out_of_bounds(event, BERLIN) == ""
    # the payload is a valid event of the contract; the reason rides along as an extra field
    import orjson

    parsed = parse_event(orjson.dumps(request.payload()))
    assert parsed == event and request.payload()["reason"] == "Quarter-end campaign"


def test_the_same_submission_is_the_same_event_and_another_is_not() -> None:
    first, _ = validate("acme", form(), BERLIN, NOW)
    again, _ = validate("acme", form(), BERLIN, NOW + 1500)
    other, _ = validate("acme", form(submission="t" * 24), BERLIN, NOW)
    assert first and again and other
    assert first.event.event_id == again.event.event_id != other.event.event_id
    assert submission_ids("acme", SUBMISSION) != submission_ids("globex", SUBMISSION)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"starts": ""}, "starts", "Enter the start"),
        ({"ends": "tomorrow"}, "ends", "Enter the end"),
        ({"ends": "2026-12-01T07:00"}, "ends", "after the start"),
        ({"metrics": []}, "metrics", "at least one metric"),
        ({"metrics": ["minutes"]}, "metrics", "Choose among"),
        ({"reason": "  "}, "reason", "why traffic"),
        ({"reason": "x" * 501}, "reason", "under 500"),
        ({"submission": "x"}, "form", "reload the page"),
        ({"starts": "2026-11-28T08:00"}, "starts", "at least 24 hours ahead"),
        ({"ends": "2026-12-16T08:01"}, "ends", "at most 14 days"),
    ],
)
def test_bad_input_is_refused_with_a_message(
    changes: dict[str, object], field: str, message: str
) -> None:
    request, errors = validate("acme", form(**changes), BERLIN, NOW)
    assert request is None
    assert message in errors[field]


def test_the_bounds_follow_the_policy() -> None:
    loose = dataclasses.replace(BERLIN, notice_min_lead=0, notice_max_length=30)
    request, errors = validate(
        "acme", form(starts="2026-11-27T14:00", ends="2026-12-20T00:00"), loose, NOW
    )
    assert errors == {} and request is not None
