"""Valid policy files: defaults, revisions by event time, tenant overrides."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from fairuse.errors import PolicyError
from fairuse.policy import (
    DEFAULT_POLICY,
    LIMIT_FIELDS,
    Limits,
    Policy,
    Revision,
    load_policy,
    parse_policy,
)

EXAMPLE = Path(__file__).parents[3] / "examples" / "policy-2027.toml"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def revision_toml(rid: str, start: str, **limits: object) -> str:
    values = {name: getattr(Limits(), name) for name in LIMIT_FIELDS} | limits
    body = "\n".join(
        f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}" for k, v in values.items()
    )
    return f'[[revision]]\nid = "{rid}"\neffective_from = {start}\n{body}\n'


def test_default_policy_matches_the_policy_text() -> None:
    # Rev. January 12,2021: audio 8 h/day over 22 days, video 5 h/day, 2400 API calls/day.
    (revision,) = DEFAULT_POLICY.revisions
    limits = revision.limits
    assert revision.id == "2021-01-12"
    assert revision.effective_from_ms == ms("2021-01-12T00:00:00")
    assert revision.tenants == {}
    assert (limits.audio_hours_per_day, limits.video_hours_per_day) == (8, 5)
    assert limits.working_days_per_month == 22
    assert limits.api_calls_per_day == 2400
    assert limits.stored_calls_per_user == 10_000
    assert limits.warning_ratio == 0.8
    assert (limits.repeat_window_days, limits.repeat_threshold) == (90, 2)
    assert limits.notice_period_days == 14
    assert limits.enforcement_action == "throttle"
    assert limits.session_expiry_s == 600
    assert limits.timezone == "UTC"
    assert limits == Limits()


def test_example_has_two_revisions_and_a_tenant_override() -> None:
    policy = load_policy(EXAMPLE)
    assert [r.id for r in policy.revisions] == ["2021-01-12", "2027-01-01"]
    old, new = policy.revisions
    assert old.limits == Limits()
    assert new.limits.api_calls_per_day == 3000
    assert new.limits.enforcement_action == "charge"
    assert old.limits_for("acme").timezone == "Europe/Berlin"
    assert old.limits_for("acme").api_calls_per_day == 5000
    assert old.limits_for("acme").video_hours_per_day == 5
    assert new.limits_for("acme").timezone == "Europe/Berlin"  # carried forward
    assert new.limits_for("acme").api_calls_per_day == 6000


def test_revisions_are_sorted_by_effective_from() -> None:
    text = revision_toml("late", "2025-01-01T00:00:00Z") + revision_toml(
        "early", "2022-01-01T00:00:00Z", api_calls_per_day=100
    )
    policy = parse_policy(text)
    assert [r.id for r in policy.revisions] == ["early", "late"]


def test_revision_at_boundaries() -> None:
    policy = parse_policy(
        revision_toml("a", "2022-01-01T00:00:00Z")
        + revision_toml("b", "2022-06-01T00:00:00+02:00", api_calls_per_day=10)
    )
    b_start = ms("2022-05-31T22:00:00")
    assert policy.revisions[1].effective_from_ms == b_start
    assert policy.revision_at(ms("2021-01-01T00:00:00")).id == "a"  # before the first: the first
    assert policy.revision_at(ms("2022-01-01T00:00:00")).id == "a"
    assert policy.revision_at(b_start - 1).id == "a"
    assert policy.revision_at(b_start).id == "b"
    assert policy.revision_at(ms("2099-12-31T23:59:59")).id == "b"


def test_limits_at_resolves_tenant_overrides() -> None:
    text = (
        revision_toml("a", "2022-01-01T00:00:00Z")
        + '[revision.tenants."acme.eu"]\ntimezone = "Europe/Berlin"\nrepeat_threshold = 3\n'
        + revision_toml("b", "2023-01-01T00:00:00Z", api_calls_per_day=10)
        + '[revision.tenants."acme.eu"]\nenforcement_action = "charge"\n'
    )
    policy = parse_policy(text)
    revision, limits = policy.limits_at("acme.eu", ms("2022-03-01T00:00:00"))
    assert revision.id == "a"
    assert limits == Limits(timezone="Europe/Berlin", repeat_threshold=3)
    assert policy.limits_at("other", ms("2022-03-01T00:00:00"))[1] == Limits()
    # overrides carry forward, field by field, on top of the later revision's limits
    revision, limits = policy.limits_at("acme.eu", ms("2023-03-01T00:00:00"))
    assert revision.id == "b"
    assert limits == Limits(
        api_calls_per_day=10,
        enforcement_action="charge",
        timezone="Europe/Berlin",
        repeat_threshold=3,
    )
    assert policy.revisions[1].stated == {"acme.eu"}


def test_an_override_not_restated_keeps_the_tenant_time_zone_in_later_revisions() -> None:
    text = (
        revision_toml("a", "2022-01-01T00:00:00Z")
        + '[revision.tenants.acme]\ntimezone = "Europe/Berlin"\napi_calls_per_day = 5000\n'
        + revision_toml("b", "2023-01-01T00:00:00Z", api_calls_per_day=3000)
        + revision_toml("c", "2024-01-01T00:00:00Z")
        + "[revision.tenants.acme]\napi_calls_per_day = 2400\n"
    )
    policy = parse_policy(text)
    b_limits = policy.limits_at("acme", ms("2023-06-01T00:00:00"))[1]
    assert (b_limits.timezone, b_limits.api_calls_per_day) == ("Europe/Berlin", 5000)
    assert policy.revisions[1].stated == frozenset()
    # a later revision that restates a field changes only that field
    c_limits = policy.limits_at("acme", ms("2024-06-01T00:00:00"))[1]
    assert (c_limits.timezone, c_limits.api_calls_per_day) == ("Europe/Berlin", 2400)
    # other tenants get each revision's own limits
    assert policy.limits_at("other", ms("2023-06-01T00:00:00"))[1].api_calls_per_day == 3000


def test_revision_order_in_the_file_does_not_change_what_carries_forward() -> None:
    first = (
        revision_toml("a", "2022-01-01T00:00:00Z")
        + "[revision.tenants.acme]\nrepeat_threshold = 5\n"
    )
    second = revision_toml("b", "2023-01-01T00:00:00Z")
    assert parse_policy(second + first) == parse_policy(first + second)
    assert parse_policy(second + first).limits_at("acme", ms("2023-06-01T00:00:00"))[1] == Limits(
        repeat_threshold=5
    )


def test_a_tenant_table_equal_to_its_revision_is_not_an_override() -> None:
    text = (
        revision_toml("a", "2022-01-01T00:00:00Z")
        + "[revision.tenants.acme]\nrepeat_threshold = 2\n"
    )
    assert parse_policy(text).revisions[0].tenants == {}


def test_revision_timezone_is_the_default_for_its_tenants() -> None:
    text = revision_toml("a", "2022-01-01T00:00:00Z", timezone="America/New_York")
    text += "[revision.tenants.acme]\napi_calls_per_day = 9\n"
    revision = parse_policy(text).revisions[0]
    assert revision.limits.timezone == "America/New_York"
    assert revision.limits_for("acme").timezone == "America/New_York"


def test_integers_are_accepted_for_float_limits_and_stored_as_floats() -> None:
    revision = parse_policy(revision_toml("a", "2022-01-01T00:00:00Z")).revisions[0]
    assert isinstance(revision.limits.audio_hours_per_day, float)
    assert Limits(audio_hours_per_day=8) == Limits()
    assert isinstance(Limits(audio_hours_per_day=8).audio_hours_per_day, float)


def test_notice_period_may_be_zero_and_fractions_are_allowed() -> None:
    text = revision_toml(
        "a", "2022-01-01T00:00:00.250Z", notice_period_days=0, audio_hours_per_day=7.5
    )
    revision = parse_policy(text).revisions[0]
    assert revision.limits.notice_period_days == 0
    assert revision.limits.audio_hours_per_day == 7.5
    assert revision.effective_from_ms == ms("2022-01-01T00:00:00") + 250


def test_policy_constructor_rejects_empty_and_duplicates() -> None:
    with pytest.raises(PolicyError):
        Policy([])
    with pytest.raises(PolicyError):
        Policy([Revision("a", 1), Revision("b", 1)])
    with pytest.raises(PolicyError):
        Policy([Revision("a", 1), Revision("a", 2)])


def test_files_without_the_optional_settings_get_their_defaults() -> None:
    limits = DEFAULT_POLICY.revisions[0].limits
    assert (
        limits.allowance,
        limits.channel_weighting,
        limits.notice_min_lead,
        limits.notice_max_length,
        limits.throttle_days,
    ) == ("pooled", "per_channel", 24, 14, 0)


def test_optional_settings_parse_and_round_trip() -> None:
    from fairuse.policy import policy_to_toml

    text = policy_to_toml(DEFAULT_POLICY).replace(
        'enforcement_action = "throttle"',
        'enforcement_action = "throttle"\nallowance = "per_user"\nthrottle_days = 7\n'
        'notice_min_lead = 48\nnotice_max_length = 30\nchannel_weighting = "flat"',
    )
    policy = parse_policy(text)
    limits = policy.revisions[0].limits
    assert (limits.allowance, limits.throttle_days, limits.notice_min_lead) == ("per_user", 7, 48)
    assert (limits.notice_max_length, limits.channel_weighting) == (30, "flat")
    assert parse_policy(policy_to_toml(policy)) == policy
