"""policy_to_toml round-trips; policy_fingerprint depends on content only."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fairuse.events import TS_MAX_MS, TS_MIN_MS
from fairuse.policy import (
    DEFAULT_POLICY,
    LIMIT_FIELDS,
    Limits,
    Policy,
    Revision,
    parse_policy,
    policy_fingerprint,
    policy_to_toml,
)

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")
IDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789._-", min_size=1, max_size=64)
positive = st.floats(min_value=0, exclude_min=True, allow_nan=False, allow_infinity=False)
count = st.integers(min_value=1, max_value=1_000_000_000)

limits_strategy = st.builds(
    Limits,
    audio_hours_per_day=positive,
    video_hours_per_day=positive,
    working_days_per_month=st.integers(1, 31),
    api_calls_per_day=count,
    stored_calls_per_user=positive,
    warning_ratio=st.floats(0, 1, exclude_min=True, exclude_max=True),
    repeat_window_days=count,
    repeat_threshold=count,
    notice_period_days=st.integers(0, 1_000_000_000),
    enforcement_action=st.sampled_from(["throttle", "charge"]),
    session_expiry_s=count,
    timezone=st.sampled_from(ZONES),
)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    ids = draw(st.lists(IDS, min_size=1, max_size=4, unique=True))
    starts = draw(
        st.lists(
            st.integers(TS_MIN_MS, TS_MAX_MS - 1), min_size=len(ids), max_size=len(ids), unique=True
        )
    )
    revisions = []
    for rid, start in zip(ids, starts, strict=True):
        tenants = draw(st.dictionaries(IDS, limits_strategy, max_size=3))
        revisions.append(Revision(rid, start, draw(limits_strategy), tenants))
    return Policy(revisions)


@given(policies())
def test_policy_to_toml_round_trips(policy: Policy) -> None:
    assert parse_policy(policy_to_toml(policy)) == policy


def test_fingerprint_ignores_layout_comments_and_offsets() -> None:
    lines = policy_to_toml(DEFAULT_POLICY).splitlines()
    header, rest = lines[:2], lines[2:]
    relaid = [*header, "# the same policy, written differently", *reversed(rest)]
    relaid = [
        "effective_from = 2021-01-12T01:00:00+01:00" if line.startswith("effective_from") else line
        for line in relaid
    ]
    assert policy_fingerprint(parse_policy("\n".join(relaid))) == policy_fingerprint(DEFAULT_POLICY)


def test_default_policy_round_trips_and_fingerprint_is_stable() -> None:
    assert parse_policy(policy_to_toml(DEFAULT_POLICY)) == DEFAULT_POLICY
    assert policy_fingerprint(DEFAULT_POLICY) == "e35c9994bccdef5d"


def test_fingerprint_changes_with_any_limit() -> None:
    (revision,) = DEFAULT_POLICY.revisions
    seen = {policy_fingerprint(DEFAULT_POLICY)}
    for name in LIMIT_FIELDS:
        value = getattr(revision.limits, name)
        changed = "charge" if value == "throttle" else value + 1
        limits = Limits(**{**_as_dict(revision.limits), name: changed})
        seen.add(
            policy_fingerprint(Policy([Revision(revision.id, revision.effective_from_ms, limits)]))
        )
    assert len(seen) == len(LIMIT_FIELDS) + 1


def _as_dict(limits: Limits) -> dict[str, object]:
    return {name: getattr(limits, name) for name in (*LIMIT_FIELDS, "timezone")}
