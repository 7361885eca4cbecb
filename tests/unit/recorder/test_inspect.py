"""``fairuse inspect events``' counting and table, without a broker."""

from __future__ import annotations

from fairuse.cli import build_parser
from fairuse.events import ApiCall, SessionStarted, encode_event
from fairuse.recorder.inspect import count_events, format_table

TS = 1_793_577_600_000


def records() -> list[tuple[bytes | None, bytes | None]]:
    start = SessionStarted(
        event_id="e1", tenant_id="acme", ts=TS, session_id="s1", user_id="u1", media="audio"
    )
    calls = [ApiCall(event_id=f"c{n}", tenant_id="globex", ts=TS, count=5) for n in range(3)]
    return [
        (b"acme", encode_event(start)),
        *((b"globex", encode_event(c)) for c in calls),
        (b"globex", b"not json"),
        (None, None),
    ]


def test_counts_per_tenant_and_type_with_invalid_payloads_under_their_key() -> None:
    counts = count_events(records())
    assert counts["acme"] == {"session_started": 1}
    assert counts["globex"] == {"api_call": 3, "invalid": 1}
    assert counts["?"] == {"invalid": 1}


def test_table_has_a_row_per_tenant_only_seen_columns_and_totals() -> None:
    table = format_table(count_events(records())).splitlines()
    assert table[0].split() == ["tenant", "started", "api_call", "invalid", "total"]
    assert table[2].split() == ["?", "0", "0", "1", "1"]
    assert table[3].split() == ["acme", "1", "0", "0", "1"]
    assert table[4].split() == ["globex", "0", "3", "1", "4"]
    assert table[-1].split() == ["TOTAL", "1", "3", "2", "6"]
    assert len({len(line) for line in table}) == 1  # aligned


def test_inspect_events_is_registered() -> None:
    args = build_parser().parse_args(["inspect", "events", "--from-beginning", "--timeout", "5"])
    assert args.from_beginning and args.timeout == 5.0
    assert args.func.__name__ == "run_inspect_events"
