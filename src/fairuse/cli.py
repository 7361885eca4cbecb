"""The ``fairuse`` command line: one subcommand per job, each registered by its own module."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence

from fairuse.errors import FairUseError

# Each module defines ``register(subparsers)``, adding subcommands whose parsers set
# ``func(args) -> int``.
COMMAND_MODULES: tuple[str, ...] = (
    "fairuse.policy_cli",
    "fairuse.recorder.cli",
    "fairuse.recorder.inspect",
    "fairuse.topics",
    "fairuse.replay",
    "fairuse.stream.cli",
    "fairuse.warehouse.cli",
    "fairuse.notify.cli",
    "fairuse.ingest.cli",
    "fairuse.portal.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="fairuse", description="Meter a call-recording service against its Fair Usage Policy."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; expected failures print one line to stderr and exit 2; Ctrl-C ends the
    process by SIGINT."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FairUseError as exc:
        print(f"fairuse {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Die of SIGINT rather than exit normally, so a calling shell script stops too.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        return 130


if __name__ == "__main__":
    sys.exit(main())
