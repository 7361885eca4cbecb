"""``fairuse simulate --out``: NDJSON, byte-identical per seed, bounded by events or duration."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairuse.cli import build_parser, main
from fairuse.errors import ConfigError
from fairuse.events import Rejection, parse_event
from fairuse.recorder.cli import Pacer, parse_duration_ms, parse_start_ms
from fairuse.recorder.simulator import DAY_MS, HOUR_MS, Emission


@pytest.mark.parametrize(
    ("text", "ms"),
    [("30d", 30 * DAY_MS), ("12h", 12 * HOUR_MS), ("90m", 90 * 60_000), ("45s", 45_000),
     ("1d12h", 36 * HOUR_MS), ("1.5h", 90 * 60_000), ("2w", 14 * DAY_MS)],
)  # fmt: skip
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "30", "d", "3x", "0d", "1d 2", "-1d"])
def test_bad_durations_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration_ms(text)


def test_start_is_utc_unless_an_offset_is_given() -> None:
    assert parse_start_ms("2026-11-02") == 1_793_577_600_000
    assert parse_start_ms("2026-11-02T01:00:00+01:00") == 1_793_577_600_000
    with pytest.raises(ConfigError):
        parse_start_ms("next monday")


def run(tmp_path: Path, name: str, *args: str) -> bytes:
    out = tmp_path / name
    assert main(["simulate", "--out", str(out), *args]) == 0
    return out.read_bytes()


def test_out_writes_one_valid_event_per_line_identically_per_seed(tmp_path: Path) -> None:
    args = ("--seed", "11", "--tenants", "3", "--duration", "1d")
    first = run(tmp_path, "a.ndjson", *args)
    assert first == run(tmp_path, "b.ndjson", *args)
    assert first != run(tmp_path, "c.ndjson", "--seed", "12", "--tenants", "3", "--duration", "1d")
    lines = first.splitlines()
    assert len(lines) > 1000
    assert not any(isinstance(parse_event(line), Rejection) for line in lines)
    last = max(parse_event(line).ts for line in lines)  # type: ignore[union-attr]
    assert last < parse_start_ms("2026-11-02") + DAY_MS


def test_events_bounds_the_count_and_faults_add_rejects(tmp_path: Path) -> None:
    lines = run(tmp_path, "n.ndjson", "--events", "5000", "--faults", "0.05").splitlines()
    assert len(lines) == 5000
    rejected = [line for line in lines if isinstance(parse_event(line), Rejection)]
    assert 0 < len(rejected) < 5000 * 0.05


def test_simulate_is_registered_with_kafka_as_the_default_sink() -> None:
    args = build_parser().parse_args(["simulate"])
    assert args.out is None and args.func.__name__ == "run_simulate"


def test_pacer_holds_back_to_the_speed_and_rate() -> None:
    emission = Emission(at=10_000, tenant_id="t", payload=b"{}", event=None)
    assert Pacer(speed=0, rate=0, start_ms=0).delay(emission) == 0
    assert 9.0 < Pacer(speed=1.0, rate=0, start_ms=0).delay(emission) <= 10.0
    pacer = Pacer(speed=0, rate=10.0, start_ms=0)
    delays = [pacer.delay(emission) for _ in range(11)]
    assert delays[0] == 0 and 0.9 < delays[10] <= 1.0
