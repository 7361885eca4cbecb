"""`fairuse policy check`: prints revisions, exits 2 with the offending line on a bad file."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from fairuse.cli import build_parser, main
from fairuse.policy_cli import policy_actions, register

EXAMPLE = str(Path(__file__).parents[3] / "examples" / "policy-2027.toml")


def test_check_prints_revisions_and_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", EXAMPLE]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{EXAMPLE}: OK, 2 revisions, fingerprint ")
    assert "revision '2021-01-12' effective from 2021-01-12T00:00:00Z" in out
    assert "revision '2027-01-01' effective from 2027-01-01T00:00:00Z" in out
    assert "api_calls_per_day        3000 calls/day per tenant" in out
    assert "tenant 'acme' overrides:\n    api_calls_per_day        6000" in out
    assert "timezone                 Europe/Berlin" in out


def test_check_at_shows_only_the_revision_in_force(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", EXAMPLE, "--at", "2026-12-31T23:59:59Z"]) == 0
    out = capsys.readouterr().out
    assert "revision '2021-01-12'" in out
    assert "revision '2027-01-01'" not in out


def test_check_at_the_boundary_millisecond(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", EXAMPLE, "--at", "2027-01-01T00:00:00.000+00:00"]) == 0
    assert "revision '2021-01-12'" not in capsys.readouterr().out
    assert main(["policy", "check", EXAMPLE, "--at", "2026-12-31T23:59:59.999Z"]) == 0
    assert "revision '2027-01-01'" not in capsys.readouterr().out


def test_check_at_rejects_a_bad_instant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", EXAMPLE, "--at", "next tuesday"]) == 2
    assert capsys.readouterr().err == (
        "fairuse policy: --at: not an ISO 8601 instant: 'next tuesday'\n"
    )


def test_check_bad_file_exits_2_with_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text(Path(EXAMPLE).read_text().replace("api_calls_per_day = 3000", "api_calls = 1"))
    assert main(["policy", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    line = Path(EXAMPLE).read_text().splitlines().index("api_calls_per_day = 3000") + 1
    assert err == (
        f"fairuse policy: {bad}:{line}: revision '2027-01-01': unknown field 'api_calls' "
        "(did you mean 'api_calls_per_day'?)\n"
    )


def test_check_shows_overrides_carried_into_a_revision_that_does_not_restate_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = Path(EXAMPLE).read_text()
    last = text.rindex('[revision.tenants."acme"]')
    path = tmp_path / "p.toml"
    path.write_text(text[:last])
    assert main(["policy", "check", str(path)]) == 0
    out = capsys.readouterr().out
    later = out[out.index("revision '2027-01-01'") :]
    assert "tenant 'acme' overrides (carried from an earlier revision):" in later
    assert "timezone                 Europe/Berlin" in later
    assert "api_calls_per_day        5000" in later
    assert "warning:" not in out


def test_another_module_can_add_a_policy_action() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    register(sub)
    publish = policy_actions(sub).add_parser("publish")
    publish.add_argument("file")
    publish.set_defaults(func="publish-handler")
    assert parser.parse_args(["policy", "publish", "x.toml"]).func == "publish-handler"
    assert parser.parse_args(["policy", "check", "x.toml"]).file == "x.toml"


def test_policy_group_is_in_the_fairuse_cli() -> None:
    args = build_parser().parse_args(["policy", "check", "f.toml"])
    assert args.command == "policy"
    assert args.policy_action == "check"


def test_first_periods_a_revision_governs() -> None:
    from fairuse.policy import parse_instant
    from fairuse.policy_cli import first_periods

    assert first_periods(parse_instant("2026-04-01T00:00:00Z"), "UTC") == ("2026-04-01", "2026-04")
    assert first_periods(parse_instant("2026-03-15T00:00:00Z"), "UTC") == ("2026-03-15", "2026-04")
    assert first_periods(parse_instant("2026-12-15T10:00:00Z"), "UTC") == ("2026-12-16", "2027-01")
    # midnight UTC is 09:00 in Tokyo: the Tokyo day of April 1 started before the revision
    assert first_periods(parse_instant("2026-04-01T00:00:00Z"), "Asia/Tokyo") == (
        "2026-04-02",
        "2026-05",
    )


def test_check_says_which_periods_each_revision_first_governs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["policy", "check", "src/fairuse/default_policy.toml"]) == 0
    out = capsys.readouterr().out
    assert "first governs: daily metrics from 2021-01-12, monthly metrics from 2021-02" in out
