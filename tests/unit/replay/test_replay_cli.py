"""`fairuse replay`: NDJSON in, NDJSON records out, deterministic, with --usage and --summary."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from fairuse.cli import main
from fairuse.policy import DEFAULT_POLICY
from fairuse.replay import numbered_lines, replay

T0 = 1_772_442_000_000  # 2026-03-02T09:00:00Z
HOUR = 3_600_000
SESSION = 600_000  # the default session expiry: a start and a stop this far apart are live


def event(kind: str, event_id: str, ts: int, tenant: str = "acme", **fields) -> bytes:
    obj = {"type": kind, "event_id": event_id, "tenant_id": tenant, "ts": ts, **fields}
    return orjson.dumps(obj)


EVENTS = [
    event("session_started", "e1", T0, session_id="s1", user_id="u1", media="audio", channels=2),
    b"",
    event("session_stopped", "e2", T0 + SESSION, session_id="s1"),
    event("api_call", "e3", T0, count=2500),
    event("api_call", "e3", T0, count=2500),  # a repeated delivery
    b"not json",
    b"   ",
    event("api_call", "e4", T0 + 1, tenant="beta", count=10),
]


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\n".join(EVENTS) + b"\n")
    return path


def lines(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines()]


def test_replay_writes_records_with_topics_and_counts(
    events_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.ndjson"
    assert main(["replay", str(events_file), "--out", str(out)]) == 0
    records = lines(out.read_bytes())
    assert [(r["topic"], r.get("status") or r.get("reason")) for r in records] == [
        ("fairuse.violations", "warning"),
        ("fairuse.violations", "exceeded"),
        ("fairuse.dead-letter", "bad_json"),
    ]
    assert records[2]["source"] == "events.ndjson:6"  # empty lines are skipped but counted
    assert records[2]["raw"] == "not json"
    err = capsys.readouterr().err.strip()
    assert err == (
        "replay: 6 events, 1 dead letters, 1 duplicates, 2 violations, 0 enforcement, "
        "1 usage accruals, 0 statements, 0 adjustments"
    )


def test_usage_and_summary_flags(events_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(events_file), "--usage", "--summary"]) == 0
    records = lines(capsys.readouterr().out.encode())
    usage = [r for r in records if r["topic"] == "fairuse.usage"]
    assert usage == [
        {
            "tenant_id": "acme",
            "metric": "audio_hours",
            "day": "2026-03-02",
            "weighted_ms": 2.0 * SESSION,
            "raw_ms": SESSION,
            "session_id": "s1",
            "user_id": "u1",
            "event_id": "e2",
            "topic": "fairuse.usage",
        }
    ]
    summary = [r for r in records if r["topic"] == "summary"]
    assert records[-len(summary) :] == summary  # the summary comes after every record
    assert [(r["tenant_id"], r["metric"], r["period"], r["observed"]) for r in summary] == [
        ("acme", "api_calls", "2026-03-02", 2500),
        ("acme", "audio_hours", "2026-03", 2.0 * SESSION / HOUR),
        ("beta", "api_calls", "2026-03-02", 10),
    ]


def test_output_is_byte_deterministic(events_file: Path, tmp_path: Path) -> None:
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.ndjson"
        assert main(["replay", str(events_file), "--usage", "--summary", "--out", str(out)]) == 0
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0].endswith(b"\n")


def test_replay_under_another_policy_is_a_what_if(events_file: Path, tmp_path: Path) -> None:
    lenient = tmp_path / "lenient.toml"
    lenient.write_text(
        "[[revision]]\n"
        'id = "lenient"\n'
        "effective_from = 2021-01-12T00:00:00Z\n"
        "audio_hours_per_day = 8\nvideo_hours_per_day = 5\nworking_days_per_month = 22\n"
        "api_calls_per_day = 10000\nstored_calls_per_user = 10000\nwarning_ratio = 0.8\n"
        "repeat_window_days = 90\nrepeat_threshold = 2\nnotice_period_days = 14\n"
        'enforcement_action = "throttle"\nsession_expiry_s = 600\n'
    )
    out = tmp_path / "out.ndjson"
    assert main(["replay", str(events_file), "--policy", str(lenient), "--out", str(out)]) == 0
    assert [r["topic"] for r in lines(out.read_bytes())] == ["fairuse.dead-letter"]


def test_bad_policy_or_missing_file_exits_2(tmp_path: Path, capsys) -> None:
    assert main(["replay", str(tmp_path / "missing.ndjson")]) == 2
    assert "missing.ndjson" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[[revision]]\nid = 1\n")
    assert main(["replay", str(tmp_path / "x"), "--policy", str(bad)]) == 2


def test_replay_function_reads_crlf_lines_and_keeps_sources() -> None:
    stream = io.BytesIO(EVENTS[0] + b"\r\n\r\n" + EVENTS[2] + b"\r\n")
    pairs = list(numbered_lines(stream, "f"))
    assert [source for _, source in pairs] == ["f:1", "f:3"]
    out = io.BytesIO()
    counts = replay(pairs, out, DEFAULT_POLICY, usage=True)
    assert counts.events == 2 and counts.usage == 1
    assert orjson.loads(out.getvalue())["raw_ms"] == SESSION


def test_stdin_and_the_console_script(events_file: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fairuse", "replay", "-"],
        input=events_file.read_bytes(),
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0
    assert [r["topic"] for r in lines(result.stdout)][-1] == "fairuse.dead-letter"
    assert b"replay: 6 events" in result.stderr


def test_record_line_is_the_record_dict_plus_topic() -> None:
    from fairuse.records import Enforcement, Violation, dead_letter
    from fairuse.replay import record_line

    samples = [
        Enforcement(
            enforcement_id="n",
            tenant_id="t",
            kind="notice",
            action="charge",
            ts=1,
            effective_at=2,
            strikes=("a", "b"),
        ),
        Violation(
            violation_id="v",
            tenant_id="t",
            metric="audio_hours",
            period="2026-03",
            status="warning",
            observed=141.6,
            limit=176.0,
            unit="hours",
            seats=1,
            policy_revision="r",
            ts=3,
        ),
        dead_letter(b"\xff", "bad_json", "bad", source="f:1"),
    ]
    for record in samples:
        line = record_line(record)
        assert line.endswith(b"}\n")
        assert orjson.loads(line) == {**record.to_dict(), "topic": record.TOPIC}


def test_output_does_not_depend_on_the_hash_seed(events_file: Path) -> None:
    outputs = set()
    for seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-m", "fairuse", "replay", str(events_file), "--usage", "--summary"],
            capture_output=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        outputs.add(result.stdout)
    assert len(outputs) == 1
