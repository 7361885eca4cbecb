"""Rule 4: the four metrics, their periods, units, limits and the tenant's seats.

- ``audio_hours`` / ``video_hours``: weighted session hours per local month; limit =
  hours_per_day x working_days_per_month x seats.
- ``api_calls``: calls per local day; limit = api_calls_per_day.
- ``stored_calls_per_user``: stored calls / seats, per local month; limit = stored_calls_per_user.

Seats of audio/video hours = the month's seat-days divided by the days elapsed so far (named
active users integrated over event time from the later of the month's start and the tenant's
first event, up to the tenant clock), at least 1. Seats of stored calls per user = named active
users now, at least 1. Stored calls = distinct call ids stored and not deleted.
"""

from __future__ import annotations

from fairuse.events import Metric
from fairuse.ledger.calendar import Calendar
from fairuse.ledger.state import USER_SEP, CallsRow, HoursRow, Row, StoredRow, TenantState
from fairuse.policy import Limits
from fairuse.records import Unit

MS_PER_HOUR = 3_600_000
HOUR_METRICS: tuple[Metric, ...] = ("audio_hours", "video_hours")
SEAT_METRICS: tuple[Metric, ...] = ("audio_hours", "video_hours", "stored_calls_per_user")
UNITS: dict[str, Unit] = {
    "audio_hours": "hours",
    "video_hours": "hours",
    "api_calls": "calls",
    "stored_calls_per_user": "calls_per_user",
}


def seats(state: TenantState) -> int:
    """Named active users now, at least 1."""
    return len(state.users) or 1


def integrate_seats(state: TenantState, calendar: Calendar, until: int) -> None:
    """Add the named active users x time from the last integration up to ``until`` to the
    months' seat time (call before the roster changes; an earlier ``until`` adds nothing)."""
    seat_time = state.seat_time
    if not seat_time.since:
        seat_time.since = seat_time.upto = until
        state.seats_memo = {}
        return
    at = seat_time.upto
    if until <= at:
        return
    count = len(state.users)
    months = seat_time.months
    while at < until:
        month = calendar.day_of(at)[:7]
        end = min(calendar.period_end(month), until)
        months[month] = months.get(month, 0.0) + count * (end - at)
        at = end
    seat_time.upto = until
    state.seats_memo = {}


def average_seats(state: TenantState, calendar: Calendar, month: str) -> float:
    """The month's seats: seat-ms / ms elapsed up to the tenant clock, at least 1 (memoised per
    month and calendar until the seat time or the roster changes and, where the answer depends
    on it, the tenant clock)."""
    known = state.seats_memo.get((month, calendar))
    if known is not None and (known[1] < 0 or known[1] == state.clock_ms):
        return known[0]
    seat_time = state.seat_time
    begin = max(calendar.period_start(month), seat_time.since)
    clock = -1  # the result does not depend on the tenant clock
    if seat_time.upto <= begin:  # no roster change inside the month: the count throughout
        found = float(len(state.users) or 1)
    else:
        clock = state.clock_ms
        now = min(clock, calendar.period_end(month))
        if now <= begin:
            found = float(len(state.users) or 1)
        else:
            upto = min(seat_time.upto, now)
            total = seat_time.months.get(month, 0.0) + len(state.users) * (now - upto)
            found = max(1.0, total / (now - begin))
    state.seats_memo[(month, calendar)] = (found, clock)
    return found


def prune_seat_time(state: TenantState, keep_from: str) -> None:
    """Forget the seat time of months before ``keep_from`` (``YYYY-MM``)."""
    months = state.seat_time.months
    for month in [m for m in months if m < keep_from]:
        del months[month]
    state.seats_memo = {}


def limit_of(metric: str, limits: Limits, seat_count: float) -> float | int:
    """The limit of ``metric`` for a period, in the metric's unit."""
    if metric == "audio_hours":
        return limits.audio_hours_per_day * limits.working_days_per_month * seat_count
    if metric == "video_hours":
        return limits.video_hours_per_day * limits.working_days_per_month * seat_count
    if metric == "api_calls":
        return limits.api_calls_per_day
    return limits.stored_calls_per_user


def _rows(state: TenantState, metric: str) -> dict[str, Row]:
    rows = state.periods.get(metric)
    if rows is None:
        rows = state.periods[metric] = {}
    return rows


def add_session_time(
    state: TenantState, metric: str, month: str, raw_ms: int, weighted: float, announced: float
) -> None:
    """Add one accrual piece to the month's hours row (``announced``: the weighted part of it
    inside prior notices)."""
    rows = state.periods.get(metric)
    if rows is None:
        rows = state.periods[metric] = {}
    row = rows.get(month)
    if row is None:
        rows[month] = HoursRow(weighted, raw_ms, announced=announced)
    else:
        row.weighted_ms += weighted  # type: ignore[union-attr]
        row.raw_ms += raw_ms  # type: ignore[union-attr]
        if announced:
            row.announced += announced  # type: ignore[union-attr]


def count_late(state: TenantState, metric: str, month: str) -> None:
    """Count one heartbeat or stop of a session already ended by a gap (``late_after_expiry``)."""
    rows = _rows(state, metric)
    row = rows.get(month)
    if row is None:
        rows[month] = HoursRow(0.0, 0, late=1)
    else:
        row.late += 1  # type: ignore[union-attr]


def add_api_calls(state: TenantState, day: str, count: int) -> None:
    """Add ``count`` calls to the day's row."""
    rows = _rows(state, "api_calls")
    row = rows.get(day)
    if row is None:
        rows[day] = CallsRow(count)
    else:
        row.calls += count  # type: ignore[union-attr]


def store_call(state: TenantState, call_id: str) -> bool:
    """Record a stored call; False if it was already stored."""
    return state.calls.add(call_id)


def delete_call(state: TenantState, call_id: str) -> bool:
    """Forget a stored call; False if it was unknown (then nothing changes)."""
    return state.calls.remove(call_id)


def activate_user(state: TenantState, user_id: str) -> bool:
    """Add a named active user; False if already active."""
    if user_id in state.users:
        return False
    state.users[user_id] = None
    state.seats_memo = {}
    return True


def deactivate_user(state: TenantState, user_id: str) -> bool:
    """Remove a named active user; False if not active."""
    if user_id not in state.users:
        return False
    del state.users[user_id]
    state.seats_memo = {}
    return True


def measure(
    state: TenantState, metric: str, period: str, limits: Limits, calendar: Calendar
) -> tuple[float | int, float | int, float]:
    """``(observed, limit, seats)`` of the period now, noting the limit (and stored calls per
    user) in the period's row, created for stored_calls_per_user if missing."""
    if metric in HOUR_METRICS:  # the tenant's pooled hours
        seat_count: float = average_seats(state, calendar, period)
        limit = limit_of(metric, limits, seat_count)
    elif USER_SEP in metric:  # one user's own hours: the allowance of one seat
        seat_count = 1.0
        limit = limit_of(metric.partition(USER_SEP)[0], limits, seat_count)
    else:
        seat_count = seats(state)
        limit = limit_of(metric, limits, seat_count)
    rows = state.periods.get(metric)
    if rows is None:
        rows = state.periods[metric] = {}
    if metric == "stored_calls_per_user":
        observed: float | int = len(state.calls) / seat_count
        rows[period] = StoredRow(observed, limit)
        return observed, limit, seat_count
    row = rows.get(period)
    if row is None:
        return 0, limit, seat_count
    row.limit = limit
    if type(row) is CallsRow:
        return row.calls, limit, seat_count
    return (row.weighted_ms - row.announced) / MS_PER_HOUR, limit, seat_count  # type: ignore[union-attr]
