from __future__ import annotations

from ledger_support import DAY, HOUR, ms

from fairuse.ledger.calendar import Calendar


def test_utc_split_at_midnight() -> None:
    cal = Calendar("UTC")
    start = ms("2026-03-01T22:00")
    assert cal.split(start, start + 5 * HOUR) == [
        ("2026-03-01", 2 * HOUR),
        ("2026-03-02", 3 * HOUR),
    ]


def test_split_at_local_midnight_not_utc() -> None:
    cal = Calendar("Asia/Tokyo")  # UTC+9: local midnight is 15:00 UTC
    start = ms("2026-06-10T14:00")
    assert cal.split(start, start + 2 * HOUR) == [("2026-06-10", HOUR), ("2026-06-11", HOUR)]


def test_berlin_spring_forward_day_has_23_hours() -> None:
    cal = Calendar("Europe/Berlin")
    start = ms("2026-03-28T12:00", "Europe/Berlin")
    end = ms("2026-03-30T12:00", "Europe/Berlin")
    assert cal.split(start, end) == [
        ("2026-03-28", 12 * HOUR),
        ("2026-03-29", 23 * HOUR),
        ("2026-03-30", 12 * HOUR),
    ]


def test_berlin_fall_back_day_has_25_hours() -> None:
    cal = Calendar("Europe/Berlin")
    start = ms("2026-10-24T12:00", "Europe/Berlin")
    end = ms("2026-10-26T12:00", "Europe/Berlin")
    assert cal.split(start, end) == [
        ("2026-10-24", 12 * HOUR),
        ("2026-10-25", 25 * HOUR),
        ("2026-10-26", 12 * HOUR),
    ]


def test_split_crosses_month_and_year() -> None:
    cal = Calendar("America/New_York")
    start = ms("2026-12-31T23:30", "America/New_York")
    assert cal.split(start, start + HOUR) == [("2026-12-31", HOUR // 2), ("2027-01-01", HOUR // 2)]


def test_day_of_uses_local_date() -> None:
    cal = Calendar("America/Los_Angeles")
    assert cal.day_of(ms("2026-07-01T03:00")) == "2026-06-30"
    assert cal.day_of(ms("2026-07-01T07:00")) == "2026-07-01"


def test_split_of_empty_span_is_empty_and_pieces_sum_exactly() -> None:
    cal = Calendar("Australia/Sydney")
    assert cal.split(5, 5) == []
    start = ms("2026-04-01T00:00")
    pieces = cal.split(start, start + 40 * DAY + 123)
    assert sum(p for _, p in pieces) == 40 * DAY + 123
    assert len({d for d, _ in pieces}) == len(pieces)


def test_midnight_in_a_dst_gap_starts_the_day_at_the_transition() -> None:
    # Santiago (Chile) springs forward at 24:00 -> 01:00: 2022-09-11 starts at 01:00 local.
    cal = Calendar("America/Santiago")
    start = ms("2022-09-10T12:00", "America/Santiago")
    pieces = cal.split(start, start + 24 * HOUR)
    assert pieces == [("2022-09-10", 12 * HOUR), ("2022-09-11", 12 * HOUR)]
    assert cal.split(start, start + 36 * HOUR)[1] == ("2022-09-11", 23 * HOUR)


def test_fall_back_across_midnight_makes_the_day_before_25_hours() -> None:
    # Santiago (Chile) falls back at 24:00 -> 23:00: 2022-04-02 lasts 25 hours.
    cal = Calendar("America/Santiago")
    start = ms("2022-04-02T12:00", "America/Santiago")
    assert cal.split(start, start + 48 * HOUR) == [
        ("2022-04-02", 13 * HOUR),
        ("2022-04-03", 24 * HOUR),
        ("2022-04-04", 11 * HOUR),
    ]
