"""The prior-notice form: validation against the policy's bounds, and the event it produces.

Pure. Times are read in the tenant's time zone; the notice is checked by the ledger's own rule
(:func:`fairuse.ledger.notices.out_of_bounds`: ``notice_min_lead`` hours before its start, at
most ``notice_max_length`` days long), so the form refuses exactly what the worker would refuse
to count. Each rendered form carries a random ``submission`` id; the event id and notice id
derive from it, so a double click or a resent form yields the same event, never two.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from fairuse.events import METRICS, UsageNotice
from fairuse.ledger.calendar import DAY_MS
from fairuse.ledger.notices import HOUR_MS, out_of_bounds
from fairuse.policy import Limits

NOTICE_METRICS = ("audio_hours", "video_hours", "api_calls")
MAX_REASON_CHARS = 500
_SUBMISSION_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")


@dataclass(frozen=True, slots=True)
class NoticeRequest:
    """A valid form: the event to send and the customer's reason (sent beside the event)."""

    event: UsageNotice
    reason: str

    def payload(self) -> dict[str, object]:
        """The wire object: the event plus its ``reason`` (an extra field the contract allows)."""
        return {**self.event.to_dict(), "reason": self.reason}


def submission_ids(tenant: str, submission: str) -> tuple[str, str]:
    """``(event_id, notice_id)`` of one form submission."""
    digest = hashlib.sha256(f"{tenant}\x00{submission}".encode()).hexdigest()[:24]
    return f"portal-{digest}", f"pn-{digest}"


def _local_ms(text: str, zone: ZoneInfo) -> int | None:
    try:
        local = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if local.tzinfo is not None:
        return None
    return int(local.replace(tzinfo=zone).timestamp() * 1000)


def validate(
    tenant: str, form: dict[str, object], limits: Limits, now_ms: int
) -> tuple[NoticeRequest | None, dict[str, str]]:
    """Check a submitted form (``starts``, ``ends``: local ``YYYY-MM-DDTHH:MM``; ``metrics``: a
    list; ``reason``; ``submission``) at ``now_ms``; the request, or the errors by field."""
    zone = ZoneInfo(limits.timezone)
    errors: dict[str, str] = {}
    starts = _local_ms(str(form.get("starts") or ""), zone)
    ends = _local_ms(str(form.get("ends") or ""), zone)
    if starts is None:
        errors["starts"] = "Enter the start as a date and time, e.g. 2026-12-01T08:00."
    if ends is None:
        errors["ends"] = "Enter the end as a date and time, e.g. 2026-12-03T18:00."
    if starts is not None and ends is not None and ends <= starts:
        errors["ends"] = "The end must be after the start."
    raw_metrics = form.get("metrics") or []
    metrics = (
        [m for m in raw_metrics if isinstance(m, str)] if isinstance(raw_metrics, list) else []
    )
    if not metrics:
        errors["metrics"] = "Choose at least one metric."
    elif any(m not in NOTICE_METRICS for m in metrics):
        errors["metrics"] = "Choose among audio hours, video hours and API calls."
    reason = str(form.get("reason") or "").strip()
    if not reason:
        errors["reason"] = "Say briefly why traffic will be high."
    elif len(reason) > MAX_REASON_CHARS:
        errors["reason"] = f"Keep the reason under {MAX_REASON_CHARS} characters."
    submission = str(form.get("submission") or "")
    if not _SUBMISSION_RE.fullmatch(submission):
        errors["form"] = "This form has expired; reload the page and submit again."
    if errors:
        return None, errors
    assert starts is not None and ends is not None
    event_id, notice_id = submission_ids(tenant, submission)
    event = UsageNotice(
        event_id=event_id,
        tenant_id=tenant,
        ts=now_ms,
        notice_id=notice_id,
        starts=starts,
        ends=ends,
        metrics=tuple(m for m in METRICS if m in metrics),
    )
    if out_of_bounds(event, limits):
        if ends - starts > limits.notice_max_length * DAY_MS:
            errors["ends"] = (
                f"A notice may cover at most {limits.notice_max_length} days; this one covers "
                f"{(ends - starts) / DAY_MS:.1f}."
            )
        else:
            errors["starts"] = (
                f"Give notice at least {limits.notice_min_lead} hours ahead; this period starts "
                f"in {(starts - now_ms) / HOUR_MS:.1f} hours."
            )
        return None, errors
    return NoticeRequest(event, reason), {}
