"""Prior notices of high-traffic periods (rule 5): usage above a limit inside one is excused.

A notice covers ``[starts, ends)`` for its metrics and applies to events processed after it.
A repeated ``notice_id`` replaces the earlier notice.
"""

from __future__ import annotations

from fairuse.events import UsageNotice
from fairuse.ledger.state import TenantState


def add_notice(state: TenantState, event: UsageNotice) -> None:
    """Remember the notice of ``event``."""
    state.notices[event.notice_id] = [event.starts, event.ends, list(event.metrics)]


def covers(state: TenantState, metric: str, ts: int) -> bool:
    """Whether a known notice for ``metric`` includes the instant ``ts``."""
    for starts, ends, metrics in state.notices.values():
        if starts <= ts < ends and metric in metrics:
            return True
    return False


def prune_notices(state: TenantState, cutoff_ms: int) -> None:
    """Forget notices that ended before ``cutoff_ms``."""
    state.notices = {nid: n for nid, n in state.notices.items() if n[1] >= cutoff_ms}
