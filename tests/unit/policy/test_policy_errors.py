"""Bad policy files: each kind of error, with the exact file, line and field."""

from __future__ import annotations

import pytest

from fairuse.errors import PolicyError
from fairuse.policy import load_policy, parse_policy

# Line numbers below refer to this text (line 1 is the comment).
GOOD = """\
# two revisions
[[revision]]
id = "r1"
effective_from = 2022-01-01T00:00:00Z
audio_hours_per_day = 8.0
video_hours_per_day = 5.0
working_days_per_month = 22
api_calls_per_day = 2400
stored_calls_per_user = 10000.0
warning_ratio = 0.8
repeat_window_days = 90
repeat_threshold = 2
notice_period_days = 14
enforcement_action = "throttle"
session_expiry_s = 600

[revision.tenants."acme"]
timezone = "Europe/Berlin"
api_calls_per_day = 5000

[[revision]]
id = "r2"
effective_from = 2023-01-01T00:00:00Z
audio_hours_per_day = 8.0
video_hours_per_day = 5.0
working_days_per_month = 22
api_calls_per_day = 3000
stored_calls_per_user = 10000.0
warning_ratio = 0.8
repeat_window_days = 90
repeat_threshold = 2
notice_period_days = 14
enforcement_action = "charge"
session_expiry_s = 600
"""


def error_of(text: str) -> str:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "policy.toml")
    return str(info.value)


def edit(line: int, new: str) -> str:
    """GOOD with 1-based ``line`` replaced by ``new`` (empty: removed)."""
    lines = GOOD.splitlines()
    lines[line - 1] = new
    return "\n".join(lines) + "\n"


def test_good_text_parses() -> None:
    assert [r.id for r in parse_policy(GOOD).revisions] == ["r1", "r2"]


@pytest.mark.parametrize(
    ("line", "new", "expected"),
    [
        (
            27,
            "api_calls_per_day = -5",
            "policy.toml:27: revision 'r2': field 'api_calls_per_day' must be a positive "
            "integer, got -5",
        ),
        (
            8,
            "api_calls_per_day = 2400.5",
            "policy.toml:8: revision 'r1': field 'api_calls_per_day' must be a positive integer, "
            "got 2400.5",
        ),
        (
            8,
            'api_calls_per_day = "2400"',
            "policy.toml:8: revision 'r1': field 'api_calls_per_day' must be a positive integer, "
            'got "2400"',
        ),
        (
            15,
            "session_expiry_s = true",
            "policy.toml:15: revision 'r1': field 'session_expiry_s' must be a positive integer, "
            "got true",
        ),
        (
            5,
            "audio_hours_per_day = false",
            "policy.toml:5: revision 'r1': field 'audio_hours_per_day' must be a positive "
            "number, got false",
        ),
        (
            6,
            "video_hours_per_day = 0",
            "policy.toml:6: revision 'r1': field 'video_hours_per_day' must be a positive "
            "number, got 0",
        ),
        (
            9,
            "stored_calls_per_user = inf",
            "policy.toml:9: revision 'r1': field 'stored_calls_per_user' must be a positive "
            "number, got inf",
        ),
        (
            10,
            "warning_ratio = 1.0",
            "policy.toml:10: revision 'r1': field 'warning_ratio' must be a number between 0 "
            "and 1 (both excluded), got 1.0",
        ),
        (
            26,
            "working_days_per_month = 32",
            "policy.toml:26: revision 'r2': field 'working_days_per_month' must be an integer "
            "from 1 to 31, got 32",
        ),
        (
            12,
            "repeat_threshold = 0",
            "policy.toml:12: revision 'r1': field 'repeat_threshold' must be a positive integer, "
            "got 0",
        ),
        (
            13,
            "notice_period_days = -1",
            "policy.toml:13: revision 'r1': field 'notice_period_days' must be an integer of 0 "
            "or more, got -1",
        ),
        (
            11,
            "repeat_window_days = 1000000001",
            "policy.toml:11: revision 'r1': field 'repeat_window_days' must be a positive "
            "integer, got 1000000001",
        ),
        (
            33,
            'enforcement_action = "ban"',
            "policy.toml:33: revision 'r2': field 'enforcement_action' must be \"throttle\" or "
            '"charge", got "ban"',
        ),
        (
            18,
            'timezone = "Mars/Olympus_Mons"',
            "policy.toml:18: revision 'r1': tenant 'acme': field 'timezone' must be an IANA time "
            'zone name such as "Europe/Berlin", got "Mars/Olympus_Mons"',
        ),
        (
            19,
            "api_calls_per_day = 0",
            "policy.toml:19: revision 'r1': tenant 'acme': field 'api_calls_per_day' must be a "
            "positive integer, got 0",
        ),
        (
            19,
            "api_calls_per_dya = 5000",
            "policy.toml:19: revision 'r1': tenant 'acme': unknown field 'api_calls_per_dya' "
            "(did you mean 'api_calls_per_day'?)",
        ),
        (
            25,
            "audio_hours = 8.0",
            "policy.toml:25: revision 'r2': unknown field 'audio_hours' (did you mean "
            "'audio_hours_per_day'?)",
        ),
        (
            23,
            "effective_from = 2023-01-01T00:00:00",
            "policy.toml:23: revision 'r2': field 'effective_from' must be an instant with a UTC "
            "offset (e.g. 2021-01-12T00:00:00Z), got 2023-01-01 00:00:00",
        ),
        (
            23,
            "effective_from = 2023-01-01",
            "policy.toml:23: revision 'r2': field 'effective_from' must be an instant with a UTC "
            "offset (e.g. 2021-01-12T00:00:00Z), got 2023-01-01",
        ),
        (
            23,
            'effective_from = "2023-01-01T00:00:00Z"',
            "policy.toml:23: revision 'r2': field 'effective_from' must be an instant with a UTC "
            'offset (e.g. 2021-01-12T00:00:00Z), got "2023-01-01T00:00:00Z"',
        ),
        (
            23,
            "effective_from = 1999-12-31T23:59:59Z",
            "policy.toml:23: revision 'r2': field 'effective_from' must be in "
            "[2000-01-01, 2100-01-01)",
        ),
        (
            23,
            "effective_from = 2023-01-01T00:00:00.0005Z",
            "policy.toml:23: revision 'r2': field 'effective_from' must be whole milliseconds",
        ),
        (
            22,
            'id = "r1"',
            "policy.toml:22: revision 'r1': duplicate revision id (first at line 3)",
        ),
        (
            22,
            'id = "r 2"',
            "policy.toml:22: revision #2: field 'id' must be 1-64 of [A-Za-z0-9._-], got \"r 2\"",
        ),
        (
            23,
            "effective_from = 2022-01-01T01:00:00+01:00",
            "policy.toml:23: revision 'r2': field 'effective_from' is the same instant as "
            "revision 'r1'",
        ),
        (
            29,
            "",
            "policy.toml:21: revision 'r2': missing field 'warning_ratio' (state every limit)",
        ),
        (
            3,
            "",
            "policy.toml:2: revision #1: missing field 'id' (state every limit)",
        ),
        (
            17,
            '[revision.tenants."acme corp"]',
            "policy.toml:17: revision 'r1': tenant id \"acme corp\" must be 1-64 of [A-Za-z0-9._-]",
        ),
        (
            1,
            'owner = "ops"',
            "policy.toml:1: unknown field 'owner' (known: revision)",
        ),
        (
            8,
            "api_calls_per_day = = 3",
            "policy.toml:8: invalid TOML: Invalid value (at line 8, column 21)",
        ),
        (
            9,
            "api_calls_per_day = 2400",
            "policy.toml:9: invalid TOML: Cannot overwrite a value (at line 9, column 25)",
        ),
    ],
)
def test_error_names_file_line_and_field(line: int, new: str, expected: str) -> None:
    assert error_of(edit(line, new)) == expected


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "Factory", "right/UTC", "utc", ""])
def test_host_specific_or_unknown_zone_names_are_rejected(zone: str) -> None:
    assert error_of(edit(18, f'timezone = "{zone}"')) == (
        "policy.toml:18: revision 'r1': tenant 'acme': field 'timezone' must be an IANA time "
        f'zone name such as "Europe/Berlin", got "{zone}"'
    )


def test_unknown_revision_field_far_from_its_table() -> None:
    text = GOOD.replace('[[revision]]\nid = "r2"', '[[revision]]\nid = "r2"\nexpires = 2024-01-01')
    assert error_of(text) == (
        "policy.toml:23: revision 'r2': unknown field 'expires' (known: id, effective_from, "
        "audio_hours_per_day, video_hours_per_day, working_days_per_month, api_calls_per_day, "
        "stored_calls_per_user, warning_ratio, repeat_window_days, repeat_threshold, "
        "notice_period_days, enforcement_action, session_expiry_s, timezone, allowance, "
        "channel_weighting, notice_min_lead, notice_max_length, throttle_days, close_grace, "
        "tenants)"
    )


def test_optional_settings_are_validated_with_their_line() -> None:
    text = GOOD.replace('[[revision]]\nid = "r2"', '[[revision]]\nid = "r2"\nallowance = "each"')
    assert error_of(text) == (
        "policy.toml:23: revision 'r2': field 'allowance' must be \"pooled\" or \"per_user\", "
        'got "each"'
    )
    text = GOOD.replace('[[revision]]\nid = "r2"', '[[revision]]\nid = "r2"\nthrottle_days = -1')
    assert error_of(text).startswith("policy.toml:23: revision 'r2': field 'throttle_days' must")
    text = GOOD.replace(
        '[[revision]]\nid = "r2"', '[[revision]]\nid = "r2"\nchannel_weighting = "mono"'
    )
    assert 'field \'channel_weighting\' must be "per_channel" or "flat"' in error_of(text)


def test_tenant_override_of_non_table() -> None:
    text = GOOD.replace('[revision.tenants."acme"]\ntimezone = "Europe/Berlin"\n', "tenants = 5\n")
    text = text.replace("api_calls_per_day = 5000\n", "")
    assert error_of(text) == (
        "policy.toml:17: revision 'r1': field 'tenants' must be a table of tenants"
    )


def test_empty_file_and_no_revisions() -> None:
    assert error_of("") == "policy.toml:1: no revisions: add at least one [[revision]] table"
    assert error_of("# nothing\n") == (
        "policy.toml:1: no revisions: add at least one [[revision]] table"
    )


def test_revision_that_is_not_an_array_of_tables() -> None:
    assert error_of("# x\nrevision = 5\n") == (
        "policy.toml:2: 'revision' must be [[revision]] tables"
    )


def test_nothing_is_half_applied(tmp_path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(edit(33, 'enforcement_action = "ban"'))
    with pytest.raises(PolicyError, match=r"policy.toml:33: "):
        load_policy(path)


def test_unreadable_file() -> None:
    with pytest.raises(PolicyError, match=r"cannot read policy file /nonexistent/policy\.toml"):
        load_policy("/nonexistent/policy.toml")
