"""``fairuse policy ...``: work with policy files (``check`` here; other modules add actions).

Another module adds an action to the group with :func:`policy_actions`, in its own
``register(subparsers)``::

    publish = policy_actions(subparsers).add_parser("publish", help="...")
    publish.set_defaults(func=run_publish)
"""

from __future__ import annotations

import argparse
import time

from fairuse.errors import PolicyError
from fairuse.ledger.calendar import calendar_for
from fairuse.policy import (
    SETTING_FIELDS,
    Limits,
    Policy,
    Revision,
    format_instant,
    load_policy,
    parse_instant,
    policy_fingerprint,
)

UNITS: dict[str, str] = {
    "audio_hours_per_day": "h/day per named active user (mono-equivalent)",
    "video_hours_per_day": "h/day per named active user (1080p-equivalent)",
    "working_days_per_month": "days/month",
    "api_calls_per_day": "calls/day per tenant",
    "stored_calls_per_user": "stored calls per named active user",
    "warning_ratio": "of a limit",
    "repeat_window_days": "days",
    "repeat_threshold": "exceeded limits in the window",
    "notice_period_days": "days",
    "enforcement_action": "",
    "session_expiry_s": "s",
    "timezone": "",
    "allowance": "(pooled: the tenant's hours together; per_user: each user's own)",
    "channel_weighting": "(per_channel: each audio channel counts; flat: any audio as mono)",
    "notice_min_lead": "h before a prior notice's start",
    "notice_max_length": "days at most per prior notice",
    "throttle_days": "days a throttle lasts (0: to the end of its period)",
    "close_grace": "h after a period's end before its statement",
}

_ACTIONS_ATTR = "fairuse_policy_actions"


def policy_actions(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The action subparsers of ``fairuse policy`` (the group is created on first use)."""
    parser = subparsers.choices.get("policy")
    if parser is None:
        parser = subparsers.add_parser(
            "policy", help="check policy files", description="Work with Fair Usage Policy files."
        )
        actions = parser.add_subparsers(dest="policy_action", required=True, metavar="ACTION")
        setattr(parser, _ACTIONS_ATTR, actions)
    return getattr(parser, _ACTIONS_ATTR)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fairuse policy check``."""
    check = policy_actions(subparsers).add_parser(
        "check",
        help="validate a policy file and print its revisions",
        description="Validate a policy file and print its revisions and the limits they set. "
        "Exit 2 with the offending line on a bad file.",
    )
    check.add_argument("file", help="policy file (TOML)")
    check.add_argument(
        "--at",
        metavar="INSTANT",
        help="only the revision in force at this instant (ISO 8601, e.g. 2027-03-01T00:00:00Z)",
    )
    check.set_defaults(func=run_check)


def _parse_instant(text: str) -> int:
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise PolicyError(f"--at: not an ISO 8601 instant: {text!r}") from exc


def _limit_lines(limits: Limits, base: Limits | None = None) -> list[str]:
    lines = []
    for name in SETTING_FIELDS:
        value = getattr(limits, name)
        if base is not None and value == getattr(base, name):
            continue
        shown = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        lines.append(f"    {name:<24} {shown} {UNITS[name]}".rstrip())
    return lines


def first_periods(effective_from_ms: int, timezone: str) -> tuple[str, str]:
    """The first local day and month (``YYYY-MM-DD``, ``YYYY-MM``) in ``timezone`` that start at
    or after ``effective_from_ms``: the first periods a revision governs."""
    calendar = calendar_for(timezone)
    day = calendar.day_of(effective_from_ms)
    if calendar.period_start(day) < effective_from_ms:
        day = calendar.day_of(calendar.period_end(day))
    month = day[:7]
    if calendar.period_start(month) < effective_from_ms:
        month = calendar.day_of(calendar.period_end(month))[:7]
    return day, month


def _governs(revision: Revision, limits: Limits, who: str) -> str:
    day, month = first_periods(revision.effective_from_ms, limits.timezone)
    return (
        f"  first governs{who}: daily metrics from {day}, monthly metrics from {month} "
        f"({limits.timezone} days)"
    )


def describe(policy: Policy, now_ms: int, only: Revision | None = None) -> list[str]:
    """Human-readable lines: each revision, its limits and tenant overrides; marks the current."""
    lines = []
    current = policy.revision_at(now_ms)
    for revision in policy.revisions:
        if only is not None and revision is not only:
            continue
        marker = " (in force now)" if revision is current else ""
        start = format_instant(revision.effective_from_ms)
        lines.append(f"revision {revision.id!r} effective from {start}{marker}")
        lines.append(_governs(revision, revision.limits, ""))
        lines += _limit_lines(revision.limits)
        for tenant_id, limits in sorted(revision.tenants.items()):
            carried = "" if tenant_id in revision.stated else " (carried from an earlier revision)"
            lines.append(f"  tenant {tenant_id!r} overrides{carried}:")
            lines += _limit_lines(limits, revision.limits) or ["    (nothing)"]
            if limits.timezone != revision.limits.timezone:
                lines.append(_governs(revision, limits, f" tenant {tenant_id!r}"))
    return lines


def run_check(args: argparse.Namespace) -> int:
    """Validate ``args.file`` and print it; a bad file raises PolicyError (exit 2)."""
    policy = load_policy(args.file)
    now_ms = int(time.time() * 1000)
    only = policy.revision_at(_parse_instant(args.at)) if args.at else None
    count = len(policy.revisions)
    print(
        f"{args.file}: OK, {count} revision{'s' * (count != 1)}, "
        f"fingerprint {policy_fingerprint(policy)}"
    )
    for line in describe(policy, now_ms, only):
        print(line)
    return 0
