"""Prior notices of high-traffic periods (rule 5).

A notice covers ``[starts, ends)`` for its metrics and applies to events processed after it.
A repeated ``notice_id`` replaces the earlier notice. A notice that arrived less than
``notice_min_lead`` hours before its start, or lasts longer than ``notice_max_length`` days, is
kept but excuses nothing (``why`` says which bound it broke). Daily API periods exceeded inside
a notice are excused; audio/video time accrued inside one is ``announced``: left out of the total
compared with the monthly limit and reported beside it.
"""

from __future__ import annotations

from fairuse.events import UsageNotice
from fairuse.ledger.calendar import DAY_MS
from fairuse.ledger.state import Notice, TenantState
from fairuse.policy import Limits

HOUR_MS = 3_600_000


def out_of_bounds(event: UsageNotice, limits: Limits) -> str:
    """Why the notice of ``event`` may excuse nothing, or "" if it is within the bounds."""
    length = event.ends - event.starts
    if length > limits.notice_max_length * DAY_MS:
        return (
            f"notice '{event.notice_id}' lasts {length / DAY_MS:g} days; "
            f"notice_max_length is {limits.notice_max_length} days"
        )
    lead = event.starts - event.ts
    if lead < limits.notice_min_lead * HOUR_MS:
        return (
            f"notice '{event.notice_id}' arrived {lead / HOUR_MS:g} h before its start; "
            f"notice_min_lead is {limits.notice_min_lead} h"
        )
    return ""


def add_notice(state: TenantState, event: UsageNotice, why: str) -> None:
    """Remember the notice of ``event`` (``why``: why it excuses nothing, or "")."""
    state.notices[event.notice_id] = Notice(
        event.starts, event.ends, list(event.metrics), why, event.event_id, event.ts
    )


def covers(state: TenantState, metric: str, ts: int) -> bool:
    """Whether a notice within the bounds, for ``metric``, includes the instant ``ts``."""
    return any(
        n.starts <= ts < n.ends and metric in n.metrics and not n.why
        for n in state.notices.values()
    )


def announced_ms(state: TenantState, metric: str, start: int, end: int) -> int:
    """The part of ``[start, end)`` inside notices within the bounds for ``metric`` (notices
    that overlap each other count their overlap once)."""
    spans = sorted(
        (max(n.starts, start), min(n.ends, end))
        for n in state.notices.values()
        if not n.why and metric in n.metrics and n.starts < end and n.ends > start
    )
    total, reach = 0, start
    for lo, hi in spans:
        lo = max(lo, reach)
        if hi > lo:
            total += hi - lo
            reach = hi
    return total


def prune_notices(state: TenantState, cutoff_ms: int) -> None:
    """Forget notices that ended before ``cutoff_ms``."""
    state.notices = {nid: n for nid, n in state.notices.items() if n.ends >= cutoff_ms}
