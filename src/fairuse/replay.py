"""``fairuse replay``: run the ledger over an NDJSON file of events, in order, and print records.

Each output line is a record's JSON object plus a ``topic`` field naming where streaming would
publish it. Usage accruals are written only with ``--usage``; ``--summary`` appends the usage
summary rows (``"topic": "summary"``) after the records. Same input, same policy: same bytes out.
A one-line count summary goes to stderr. Also the what-if tool: the same events, another policy.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

import orjson

from fairuse.errors import FairUseError
from fairuse.ledger import Ledger
from fairuse.policy import DEFAULT_POLICY, Policy, load_policy
from fairuse.records import (
    Adjustment,
    DeadLetter,
    Enforcement,
    Record,
    Statement,
    UsageAccrual,
    Violation,
)

SUMMARY_TOPIC = "summary"
_TOPIC_SUFFIX: dict[type, bytes] = {
    cls: b',"topic":' + orjson.dumps(cls.TOPIC) + b"}\n"
    for cls in (Violation, Enforcement, UsageAccrual, DeadLetter, Statement, Adjustment)
}


@dataclass(slots=True)
class ReplayCounts:
    """What a replay saw and emitted."""

    events: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    violations: int = 0
    enforcement: int = 0
    usage: int = 0
    statements: int = 0
    adjustments: int = 0

    def line(self) -> str:
        """The one-line summary printed to stderr."""
        return (
            f"replay: {self.events} events, {self.dead_letters} dead letters, "
            f"{self.duplicates} duplicates, {self.violations} violations, "
            f"{self.enforcement} enforcement, {self.usage} usage accruals, "
            f"{self.statements} statements, {self.adjustments} adjustments"
        )


def record_line(record: Record) -> bytes:
    """One NDJSON line: the record's JSON object (its fields in order) plus ``topic``."""
    # orjson writes a dataclass as its fields in order; splice the topic in before the brace.
    return orjson.dumps(record)[:-1] + _TOPIC_SUFFIX[type(record)]


def numbered_lines(stream: BinaryIO, name: str) -> Iterator[tuple[bytes, str]]:
    """``(payload, "name:lineno")`` for each non-empty line (line ending removed)."""
    for lineno, line in enumerate(stream, 1):
        payload = line.rstrip(b"\r\n")
        if payload.strip():
            yield payload, f"{name}:{lineno}"


def replay(
    lines: Iterable[tuple[bytes, str]],
    out: IO[bytes],
    policy: Policy,
    *,
    usage: bool = False,
    summary: bool = False,
) -> ReplayCounts:
    """Run a fresh ledger over ``lines`` and write the NDJSON output to ``out``."""
    ledger = Ledger(policy)
    counts = ReplayCounts()
    write = out.write
    process = ledger.process
    for payload, source in lines:
        counts.events += 1
        for record in process(payload, source):
            cls = type(record)
            if cls is UsageAccrual:
                counts.usage += 1
                if not usage:
                    continue
            elif cls is Violation:
                counts.violations += 1
            elif cls is Enforcement:
                counts.enforcement += 1
            elif cls is Statement:
                counts.statements += 1
            elif cls is Adjustment:
                counts.adjustments += 1
            else:
                counts.dead_letters += 1
            write(record_line(record))
    counts.duplicates = ledger.duplicates
    if summary:
        for row in ledger.summary():
            row["topic"] = SUMMARY_TOPIC
            write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
    return counts


def run(args: argparse.Namespace) -> int:
    """Handler of ``fairuse replay``."""
    policy = load_policy(args.policy) if args.policy else DEFAULT_POLICY
    with ExitStack() as stack:
        if args.events == "-":
            source, name = sys.stdin.buffer, "-"
        else:
            source, name = _open(stack, args.events, "rb"), Path(args.events).name
        out = sys.stdout.buffer if args.out in (None, "-") else _open(stack, args.out, "wb")
        counts = replay(
            numbered_lines(source, name), out, policy, usage=args.usage, summary=args.summary
        )
        out.flush()
    print(counts.line(), file=sys.stderr)
    return 0


def _open(stack: ExitStack, path: str, mode: str) -> BinaryIO:
    try:
        return stack.enter_context(Path(path).open(mode))  # type: ignore[return-value]
    except OSError as exc:
        raise FairUseError(f"cannot open {path}: {exc}") from exc


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fairuse replay``."""
    parser = subparsers.add_parser(
        "replay",
        help="run the ledger over an NDJSON events file and print its records",
        description=__doc__,
    )
    parser.add_argument("events", help="NDJSON file of events, one per line ('-' for stdin)")
    parser.add_argument("--policy", help="policy TOML file (default: the packaged policy)")
    parser.add_argument("--out", help="write the records here instead of stdout")
    parser.add_argument("--usage", action="store_true", help="also write usage accruals")
    parser.add_argument(
        "--summary", action="store_true", help="append usage summary rows (topic 'summary')"
    )
    parser.set_defaults(func=run)
