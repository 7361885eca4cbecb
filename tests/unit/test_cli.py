"""The CLI shell: one-line errors, and Ctrl-C that a calling script notices."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from fairuse.cli import main

_INTERRUPTED_COMMAND = """
import argparse, sys
from fairuse import cli

def interrupted(args):
    raise KeyboardInterrupt

def build_parser():
    parser = argparse.ArgumentParser(prog="fairuse")
    parser.add_argument("command")
    parser.set_defaults(func=interrupted)
    return parser

cli.build_parser = build_parser
sys.exit(cli.main(["anything"]))
"""


def test_ctrl_c_ends_the_process_by_sigint() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_COMMAND], capture_output=True, timeout=60
    )

    assert done.returncode == -signal.SIGINT, done.stderr


def test_an_expected_failure_is_one_line_and_exit_2(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text("[[revision]]\nid = 'r1'\n", encoding="utf-8")

    assert main(["policy", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "policy.toml" in err
