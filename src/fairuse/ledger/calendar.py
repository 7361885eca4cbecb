"""Rule 3: split accrued time exactly at the tenant's local day (and so month) boundaries.

A day is the span between two local midnights of the tenant's IANA time zone, so it lasts 23 h or
25 h on DST change days. A local midnight that does not exist (a gap at 00:00) resolves to the
first instant of the new day (zoneinfo ``fold=0``). Months are the first seven characters of the
day (``YYYY-MM``), so splitting at days also splits at months.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

DAY_MS = 86_400_000
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_MS = timedelta(milliseconds=1)


class Calendar:
    """Local days of one time zone: ``day_of(ts)`` and ``split(start, end)``, both cached."""

    __slots__ = ("_bounds", "_ends", "_last", "_starts", "_utc", "_zone", "timezone")

    def __init__(self, timezone: str) -> None:
        self.timezone = timezone
        self._zone = ZoneInfo(timezone)
        self._utc = timezone in ("UTC", "Etc/UTC", "Etc/UCT", "UCT", "Zulu", "Etc/Zulu")
        self._bounds: dict[int, tuple[int, int, str]] = {}
        self._last: tuple[int, int, str] = (0, 0, "")
        self._starts: dict[str, int] = {}
        self._ends: dict[str, int] = {}

    def _window(self, ts: int) -> tuple[int, int, str]:
        """``(start_ms, end_ms, 'YYYY-MM-DD')`` of the local day holding ``ts``."""
        last = self._last
        if last[0] <= ts < last[1]:
            return last
        if self._utc:
            index = ts // DAY_MS
            window = self._bounds.get(index)
            if window is None:
                day = date.fromordinal(_EPOCH_DAY + index)
                window = (index * DAY_MS, (index + 1) * DAY_MS, day.isoformat())
                self._bounds[index] = window
        else:
            local = datetime.fromtimestamp(ts / 1000, UTC).astimezone(self._zone)
            ordinal = local.date().toordinal()
            window = self._bounds.get(ordinal)
            if window is None:
                window = self._local_window(local.date())
                self._bounds[ordinal] = window
            if not window[0] <= ts < window[1]:  # a local date that repeats (fall-back at 00:00)
                naive = local.replace(tzinfo=None)
                next_midnight = datetime.combine(local.date() + timedelta(days=1), time())
                window = (ts, ts + (next_midnight - naive) // _MS, window[2])
        self._last = window
        return window

    def _local_window(self, day: date) -> tuple[int, int, str]:
        start = _midnight_ms(day, self._zone)
        end = _midnight_ms(day + timedelta(days=1), self._zone)
        return start, end, day.isoformat()

    def day_of(self, ts: int) -> str:
        """The local day (``YYYY-MM-DD``) of the instant ``ts`` (epoch ms)."""
        return self._window(ts)[2]

    def period_start(self, period: str) -> int:
        """The first instant of a local day (``YYYY-MM-DD``) or month (``YYYY-MM``) (cached)."""
        start = self._starts.get(period)
        if start is None:
            start = self._starts[period] = self._period_start(period)
        return start

    def _period_start(self, period: str) -> int:
        day = date.fromisoformat(period if len(period) == 10 else period + "-01")
        if self._utc:
            return (day.toordinal() - _EPOCH_DAY) * DAY_MS
        window = self._bounds.get(day.toordinal())
        if window is None:
            window = self._bounds[day.toordinal()] = self._local_window(day)
        return window[0]

    def period_end(self, period: str) -> int:
        """The first instant after a local day (``YYYY-MM-DD``) or month (``YYYY-MM``) (cached)."""
        end = self._ends.get(period)
        if end is None:
            end = self._ends[period] = self._period_end(period)
        return end

    def _period_end(self, period: str) -> int:
        if len(period) == 10:
            following = date.fromisoformat(period) + timedelta(days=1)
            return self.period_start(following.isoformat())
        year, month = int(period[:4]), int(period[5:7])
        return self.period_start(f"{year + month // 12:04d}-{month % 12 + 1:02d}")

    def split(self, start: int, end: int) -> list[tuple[str, int]]:
        """``[(day, ms), ...]`` covering ``[start, end)`` exactly, one piece per local day."""
        last = self._last
        if last[0] <= start and end <= last[1]:
            return [(last[2], end - start)] if start < end else []
        pieces: list[tuple[str, int]] = []
        while start < end:
            _, day_end, day = self._window(start)
            stop = day_end if day_end < end else end
            pieces.append((day, stop - start))
            start = stop
        return pieces


def _midnight_ms(day: date, zone: ZoneInfo) -> int:
    local = datetime(day.year, day.month, day.day, tzinfo=zone)
    return int(local.timestamp()) * 1000


@lru_cache(maxsize=1024)
def calendar_for(timezone: str) -> Calendar:
    """The shared :class:`Calendar` of an IANA time zone name."""
    return Calendar(timezone)
