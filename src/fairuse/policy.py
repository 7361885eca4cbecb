"""The Fair Usage Policy as data: limits in revisions, chosen by event time, read from TOML.

A policy file is a list of ``[[revision]]`` tables, each with an ``id``, an ``effective_from``
instant and every limit of :class:`Limits`; ``[revision.tenants."<tenant_id>"]`` tables override
any limit and the ``timezone`` for one tenant (custom contracts). A tenant's overrides carry
forward to later revisions, field by field, until a later revision states that field again. The
revision in force at an event's time governs the event. A file with any error is rejected whole
by :func:`parse_policy` with a :class:`~fairuse.errors.PolicyError` naming the file, line and field.

Pure apart from :func:`load_policy` (reads a file) and the packaged :data:`DEFAULT_POLICY`.
The format is documented in ``docs/policy-file.md``.
"""

from __future__ import annotations

import bisect
import dataclasses
import difflib
import hashlib
import json
import math
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fairuse.errors import PolicyError
from fairuse.events import TS_MAX_MS, TS_MIN_MS
from fairuse.records import EnforcementAction

ENFORCEMENT_ACTIONS: tuple[EnforcementAction, ...] = ("throttle", "charge")
MAX_COUNT = 1_000_000_000
_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FLOAT_FIELDS = (
    "audio_hours_per_day",
    "video_hours_per_day",
    "stored_calls_per_user",
    "warning_ratio",
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Every limit of the policy (defaults: Rev. 2021-01-12) and the tenant's time zone."""

    audio_hours_per_day: float = 8.0
    video_hours_per_day: float = 5.0
    working_days_per_month: int = 22
    api_calls_per_day: int = 2400
    stored_calls_per_user: float = 10_000.0
    warning_ratio: float = 0.8
    repeat_window_days: int = 90
    repeat_threshold: int = 2
    notice_period_days: int = 14
    enforcement_action: EnforcementAction = "throttle"
    session_expiry_s: int = 600
    timezone: str = "UTC"
    # optional settings (issue 9); a file that omits them gets these defaults
    allowance: str = "pooled"
    channel_weighting: str = "per_channel"
    notice_min_lead: int = 24
    notice_max_length: int = 14
    throttle_days: int = 0
    close_grace: int = 48  # hours after a period's end before its statement (issue 10)

    def __post_init__(self) -> None:
        for name in FLOAT_FIELDS:  # 8 and 8.0 are one limit: store floats, hash and print alike
            object.__setattr__(self, name, float(getattr(self, name)))


OPTIONAL_FIELDS: tuple[str, ...] = (
    "allowance",
    "channel_weighting",
    "notice_min_lead",
    "notice_max_length",
    "throttle_days",
    "close_grace",
)
"""Settings a revision may omit (then :class:`Limits`' defaults apply)."""
LIMIT_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(Limits) if f.name != "timezone" and f.name not in OPTIONAL_FIELDS
)
"""The fields every revision must state (all of :class:`Limits` but ``timezone`` and the
optional settings)."""
SETTING_FIELDS: tuple[str, ...] = (*LIMIT_FIELDS, "timezone", *OPTIONAL_FIELDS)
"""Every field of :class:`Limits`, in the order a policy file shows them."""


@dataclass(frozen=True, slots=True)
class Revision:
    """One revision: its limits from ``effective_from_ms`` on, with per-tenant resolved limits.

    ``tenants`` holds every tenant whose limits differ from the revision's, by overrides of its
    own or carried from an earlier one; ``stated`` names the tenants whose table this revision
    itself has.
    """

    id: str
    effective_from_ms: int
    limits: Limits = field(default_factory=Limits)
    tenants: dict[str, Limits] = field(default_factory=dict)
    stated: frozenset[str] = field(default=frozenset(), compare=False)

    def limits_for(self, tenant_id: str) -> Limits:
        """The limits that apply to ``tenant_id`` (its override, else the revision's)."""
        return self.tenants.get(tenant_id, self.limits)


@dataclass(frozen=True, slots=True, init=False)
class Policy:
    """Revisions sorted by ``effective_from_ms`` (ids and instants unique, at least one).

    A tenant whose limits equal its revision's is not an override and is dropped from
    ``Revision.tenants``.
    """

    revisions: tuple[Revision, ...]
    _starts: tuple[int, ...] = field(repr=False, compare=False)

    def __init__(self, revisions: Iterable[Revision]) -> None:
        ordered = tuple(
            dataclasses.replace(
                revision,
                tenants={t: lim for t, lim in revision.tenants.items() if lim != revision.limits},
            )
            for revision in sorted(revisions, key=lambda r: r.effective_from_ms)
        )
        if not ordered:
            raise PolicyError("a policy needs at least one revision")
        starts = tuple(r.effective_from_ms for r in ordered)
        if len(set(starts)) != len(starts) or len({r.id for r in ordered}) != len(ordered):
            raise PolicyError("revision ids and effective_from instants must be unique")
        object.__setattr__(self, "revisions", ordered)
        object.__setattr__(self, "_starts", starts)

    def revision_at(self, ts_ms: int) -> Revision:
        """The revision in force at ``ts_ms``: the latest one effective at or before it.

        Before the first revision's ``effective_from``, the first revision governs.
        """
        index = bisect.bisect_right(self._starts, ts_ms) - 1
        return self.revisions[max(index, 0)]

    def limits_at(self, tenant_id: str, ts_ms: int) -> tuple[Revision, Limits]:
        """The revision in force at ``ts_ms`` and the limits it sets for ``tenant_id``."""
        revision = self.revision_at(ts_ms)
        return revision, revision.limits_for(tenant_id)


# --- validation of single values -------------------------------------------------------------


def _show(value: object) -> str:
    """``value`` as it would look in TOML, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


def _integer(lo: int, hi: int, wanted: str) -> Callable[[object], int]:
    def check(value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise ValueError(f"must be {wanted}, got {_show(value)}")
        return value

    return check


def _number(wanted: str, ok: Callable[[float], bool]) -> Callable[[object], float]:
    def check(value: object) -> float:
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
            or not ok(value)
        ):
            raise ValueError(f"must be {wanted}, got {_show(value)}")
        return float(value)

    return check


def _action(value: object) -> str:
    if value not in ENFORCEMENT_ACTIONS:
        raise ValueError(f'must be "throttle" or "charge", got {_show(value)}')
    return str(value)


_HOST_ZONES = frozenset({"localtime", "posixrules", "Factory"})  # files in the tz path, not zones


def _timezone(value: object) -> str:
    wanted = 'must be an IANA time zone name such as "Europe/Berlin"'
    if (
        not isinstance(value, str)
        or not value
        or value in _HOST_ZONES
        or value.startswith(("/", ".", "posix/", "right/"))
    ):
        raise ValueError(f"{wanted}, got {_show(value)}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{wanted}, got {_show(value)}") from exc
    return value


def _choice(*allowed: str) -> Callable[[object], str]:
    wanted = " or ".join(json.dumps(a) for a in allowed)

    def check(value: object) -> str:
        if value not in allowed:
            raise ValueError(f"must be {wanted}, got {_show(value)}")
        return str(value)

    return check


_POSITIVE_INT = _integer(1, MAX_COUNT, "a positive integer")
_POSITIVE_NUMBER = _number("a positive number", lambda v: v > 0)
_CHECKS: dict[str, Callable[[object], object]] = {
    "audio_hours_per_day": _POSITIVE_NUMBER,
    "video_hours_per_day": _POSITIVE_NUMBER,
    "working_days_per_month": _integer(1, 31, "an integer from 1 to 31"),
    "api_calls_per_day": _POSITIVE_INT,
    "stored_calls_per_user": _POSITIVE_NUMBER,
    "warning_ratio": _number("a number between 0 and 1 (both excluded)", lambda v: 0 < v < 1),
    "repeat_window_days": _POSITIVE_INT,
    "repeat_threshold": _POSITIVE_INT,
    "notice_period_days": _integer(0, MAX_COUNT, "an integer of 0 or more"),
    "enforcement_action": _action,
    "session_expiry_s": _POSITIVE_INT,
    "timezone": _timezone,
    "allowance": _choice("pooled", "per_user"),
    "channel_weighting": _choice("per_channel", "flat"),
    "notice_min_lead": _integer(0, 8760, "a number of hours from 0 to 8760"),
    "notice_max_length": _integer(1, 366, "a number of days from 1 to 366"),
    "throttle_days": _integer(0, 366, "a number of days from 0 to 366 (0: end of the period)"),
    "close_grace": _integer(0, 720, "a number of hours from 0 to 720"),
}
_REVISION_KEYS = ("id", "effective_from", *SETTING_FIELDS, "tenants")
_TENANT_KEYS = SETTING_FIELDS


# --- line numbers ------------------------------------------------------------------------------

_HEADER_RE = re.compile(r"\s*\[")
_REVISION_HEADER_RE = re.compile(r"""\s*\[\[\s*(?:revision|"revision"|'revision')\s*\]\]""")
_TENANT_HEADER_RE = re.compile(
    r"""\s*\[\s*(?:revision|"revision")\s*\.\s*(?:tenants|"tenants")\s*\.\s*"""
    r"""(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*\]"""
)


class _Lines:
    """Finds the line (1-based) of tables and keys in the TOML text; tomllib reports none."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers = [i for i, line in enumerate(self.lines) if _HEADER_RE.match(line)]
        self.revisions = [i for i, line in enumerate(self.lines) if _REVISION_HEADER_RE.match(line)]

    def key(self, name: str, after: int, default: int) -> int:
        """Line of ``name = ...`` in the table headed on line ``after`` (0: top level)."""
        pattern = re.compile(rf"""\s*(?:{re.escape(name)}|"{re.escape(name)}")\s*[=.]""")
        for i in range(after, len(self.lines)):
            if _HEADER_RE.match(self.lines[i]):
                break
            if pattern.match(self.lines[i]):
                return i + 1
        return default

    def top_key(self, name: str) -> int:
        """Line of a top-level key or table ``name``; 1 if not found."""
        line = self.key(name, 0, 0)
        if line:
            return line
        pattern = re.compile(rf"""\s*\[\[?\s*(?:{re.escape(name)}|"{re.escape(name)}")\s*[\].]""")
        return next((i + 1 for i, text in enumerate(self.lines) if pattern.match(text)), 1)

    def revision(self, index: int) -> int:
        """Line of the ``index``-th ``[[revision]]`` header (0 if it has none)."""
        return self.revisions[index] + 1 if index < len(self.revisions) else 0

    def tenant(self, revision_index: int, tenant_id: str) -> int:
        """Line of the ``[revision.tenants."<tenant_id>"]`` header of that revision (0 if none)."""
        start = self.revision(revision_index)
        if not start:
            return 0
        end = self.revision(revision_index + 1) or len(self.lines) + 1
        for i in range(start, end - 1):
            match = _TENANT_HEADER_RE.match(self.lines[i])
            if match and tenant_id in match.groups():
                return i + 1
        return 0


# --- reading a policy --------------------------------------------------------------------------


_LineOf = Callable[[str], int]


class _Reader:
    def __init__(self, text: str, source: str) -> None:
        self.lines = _Lines(text)
        self.source = source

    def fail(self, line: int, where: str, message: str) -> PolicyError:
        return PolicyError(f"{self.source}:{max(line, 1)}: {where}{message}")

    def unknown(
        self, keys: Iterable[str], known: tuple[str, ...], line_of: _LineOf, where: str
    ) -> None:
        for key in keys:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                known_list = ", ".join(known)
                hint = hint or f" (known: {known_list})"
                raise self.fail(line_of(key), where, f"unknown field '{key}'{hint}")

    def policy(self, doc: dict[str, Any]) -> Policy:
        self.unknown(doc, ("revision",), self.lines.top_key, "")
        tables = doc.get("revision")
        if not tables:
            raise self.fail(1, "", "no revisions: add at least one [[revision]] table")
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise self.fail(
                self.lines.top_key("revision"), "", "'revision' must be [[revision]] tables"
            )
        revisions: list[Revision] = []
        overrides: dict[str, dict[str, dict[str, Any]]] = {}
        for index, table in enumerate(tables):
            revision, stated = self.revision(index, table)
            overrides[revision.id] = stated
            header = self.lines.revision(index)
            where = f"revision '{revision.id}': "
            for earlier_index, earlier in enumerate(revisions):
                earlier_header = self.lines.revision(earlier_index)
                if earlier.id == revision.id:
                    line = self.lines.key("id", header, header)
                    first = self.lines.key("id", earlier_header, earlier_header)
                    raise self.fail(line, where, f"duplicate revision id (first at line {first})")
                if earlier.effective_from_ms == revision.effective_from_ms:
                    line = self.lines.key("effective_from", header, header)
                    raise self.fail(
                        line,
                        where,
                        f"field 'effective_from' is the same instant as revision '{earlier.id}'",
                    )
            revisions.append(revision)
        return Policy(carry_overrides_forward(revisions, overrides))

    def revision(self, index: int, table: dict[str, Any]) -> tuple[Revision, dict[str, dict]]:
        """The revision (tenants not resolved yet) and its tenants' stated override values."""
        header = self.lines.revision(index) or self.lines.top_key("revision")

        def line_of(key: str) -> int:
            return self.lines.key(key, header, header)

        raw_id = table.get("id")
        where = (
            f"revision '{raw_id}': "
            if isinstance(raw_id, str) and _ID_RE.fullmatch(raw_id)
            else f"revision #{index + 1}: "
        )
        self.unknown(table, _REVISION_KEYS, line_of, where)
        for name in ("id", "effective_from", *LIMIT_FIELDS):
            if name not in table:
                raise self.fail(header, where, f"missing field '{name}' (state every limit)")
        if not isinstance(raw_id, str) or not _ID_RE.fullmatch(raw_id):
            raise self.fail(
                line_of("id"),
                where,
                f"field 'id' must be 1-64 of [A-Za-z0-9._-], got {_show(raw_id)}",
            )
        effective_from_ms = self.instant(table["effective_from"], line_of("effective_from"), where)
        values = self.values(table, SETTING_FIELDS, line_of, where)
        limits = Limits(**values)
        stated = self.tenants(index, table.get("tenants", {}), line_of, where)
        return Revision(raw_id, effective_from_ms, limits), stated

    def values(
        self, table: dict[str, Any], names: tuple[str, ...], line_of: _LineOf, where: str
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in names:
            if name in table:
                try:
                    values[name] = _CHECKS[name](table[name])
                except ValueError as exc:
                    raise self.fail(line_of(name), where, f"field '{name}' {exc}") from None
        return values

    def instant(self, value: object, line: int, where: str) -> int:
        wanted = "field 'effective_from' must be an instant with a UTC offset"
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise self.fail(
                line, where, f"{wanted} (e.g. 2021-01-12T00:00:00Z), got {_show(value)}"
            )
        if value.microsecond % 1000:
            raise self.fail(line, where, "field 'effective_from' must be whole milliseconds")
        ms = (value - _EPOCH) // timedelta(milliseconds=1)
        if not TS_MIN_MS <= ms < TS_MAX_MS:
            raise self.fail(
                line, where, "field 'effective_from' must be in [2000-01-01, 2100-01-01)"
            )
        return ms

    def tenants(
        self, index: int, table: object, line_of: _LineOf, where: str
    ) -> dict[str, dict[str, Any]]:
        if not isinstance(table, dict):
            raise self.fail(line_of("tenants"), where, "field 'tenants' must be a table of tenants")
        stated: dict[str, dict[str, Any]] = {}
        for tenant_id, overrides in table.items():
            header = self.lines.tenant(index, tenant_id) or line_of("tenants")
            tenant_where = f"{where}tenant '{tenant_id}': "
            if not _ID_RE.fullmatch(tenant_id):
                raise self.fail(
                    header, where, f"tenant id {_show(tenant_id)} must be 1-64 of [A-Za-z0-9._-]"
                )
            if not isinstance(overrides, dict):
                raise self.fail(header, tenant_where, "must be a table of overrides")

            def tenant_line(key: str, header: int = header) -> int:
                return self.lines.key(key, header, header)

            self.unknown(overrides, _TENANT_KEYS, tenant_line, tenant_where)
            stated[tenant_id] = self.values(overrides, _TENANT_KEYS, tenant_line, tenant_where)
        return stated


def carry_overrides_forward(
    revisions: Iterable[Revision], stated: dict[str, dict[str, dict[str, Any]]]
) -> list[Revision]:
    """Resolve each revision's tenants, in ``effective_from`` order: a tenant's override values
    (``stated[revision_id][tenant_id]``) hold from their revision on, field by field, until a
    later revision states the same field for that tenant again."""
    in_force: dict[str, dict[str, Any]] = {}
    resolved = []
    for revision in sorted(revisions, key=lambda r: r.effective_from_ms):
        own = stated.get(revision.id, {})
        for tenant_id, values in own.items():
            in_force.setdefault(tenant_id, {}).update(values)
        tenants = {
            tenant_id: dataclasses.replace(revision.limits, **values)
            for tenant_id, values in in_force.items()
        }
        resolved.append(dataclasses.replace(revision, tenants=tenants, stated=frozenset(own)))
    return resolved


def _syntax_line(message: str, text: str) -> int:
    match = re.search(r"at line (\d+)", message)
    if match:
        return int(match.group(1))
    return max(len(text.splitlines()), 1)


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Parse a policy file's text; raise PolicyError naming ``source``, line and field if bad."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _syntax_line(str(exc), text)
        raise PolicyError(f"{source}:{line}: invalid TOML: {exc}") from None
    return _Reader(text, source).policy(doc)


def load_policy(path: str | Path) -> Policy:
    """Read and parse the policy file at ``path`` (errors name it as given)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc}") from exc
    return parse_policy(text, str(path))


# --- writing a policy --------------------------------------------------------------------------


def parse_instant(text: str) -> int:
    """An ISO 8601 date or date-time (UTC unless it names an offset) as exact epoch ms.

    Raises ValueError when ``text`` is not ISO 8601.
    """
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def format_instant(ms: int) -> str:
    """Epoch milliseconds as a TOML/RFC 3339 UTC instant, e.g. ``2021-01-12T00:00:00Z``."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    fraction = f".{ms % 1000:03d}" if ms % 1000 else ""
    return f"{moment:%Y-%m-%dT%H:%M:%S}{fraction}Z"


def _toml_value(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


_DEFAULTS = Limits()


def policy_to_toml(policy: Policy) -> str:
    """The policy as TOML that :func:`parse_policy` reads back equal.

    A tenant table states what differs from what the tenant would get without it: the
    revision's limits, or the overrides carried from earlier revisions.
    """
    out: list[str] = []
    in_force: dict[str, dict[str, Any]] = {}
    for revision in policy.revisions:
        out += ["[[revision]]", f"id = {json.dumps(revision.id)}"]
        out.append(f"effective_from = {format_instant(revision.effective_from_ms)}")
        for name in SETTING_FIELDS:
            value = getattr(revision.limits, name)
            if name in LIMIT_FIELDS or value != getattr(_DEFAULTS, name):
                out.append(f"{name} = {_toml_value(value)}")
        for tenant_id in sorted(revision.tenants.keys() | in_force.keys()):
            target = revision.limits_for(tenant_id)
            carried = in_force.setdefault(tenant_id, {})
            changed = {
                name: getattr(target, name)
                for name in SETTING_FIELDS
                if getattr(target, name) != carried.get(name, getattr(revision.limits, name))
            }
            if changed:
                out += ["", f"[revision.tenants.{json.dumps(tenant_id)}]"]
                out += [f"{name} = {_toml_value(value)}" for name, value in changed.items()]
                carried.update(changed)
        out.append("")
    return "\n".join(out)


def policy_fingerprint(policy: Policy) -> str:
    """A stable 16-hex-digit hash of the policy's content (not of its file's layout)."""
    return hashlib.sha256(policy_to_toml(policy).encode()).hexdigest()[:16]


DEFAULT_POLICY: Policy = parse_policy(
    resources.files("fairuse").joinpath("default_policy.toml").read_text(encoding="utf-8"),
    "default_policy.toml",
)
"""The packaged policy: Rev. 2021-01-12 of the Fair Usage Policy (``default_policy.toml``)."""
