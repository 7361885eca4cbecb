"""Prior notices of high-traffic periods (rule 5): usage above a limit inside one is excused.

A notice covers ``[starts, ends)`` for its metrics and applies to events processed after it.
A repeated ``notice_id`` replaces the earlier notice.
"""

from __future__ import annotations

from fairuse.events import UsageNotice
from fairuse.ledger.state import Notice, TenantState


def add_notice(state: TenantState, event: UsageNotice) -> None:
    """Remember the notice of ``event``."""
    state.notices[event.notice_id] = Notice(event.starts, event.ends, list(event.metrics))


def covers(state: TenantState, metric: str, ts: int) -> bool:
    """Whether a known notice for ``metric`` includes the instant ``ts``."""
    return any(n.starts <= ts < n.ends and metric in n.metrics for n in state.notices.values())


def prune_notices(state: TenantState, cutoff_ms: int) -> None:
    """Forget notices that ended before ``cutoff_ms``."""
    state.notices = {nid: n for nid, n in state.notices.items() if n.ends >= cutoff_ms}
