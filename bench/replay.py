"""Replay throughput on one core over a simulated month: prints events/s figures.

Usage: ``.venv/bin/python bench/replay.py [--tenants 12] [--days 30] [--seed 1] [--repeat 3]
[--faults 0.001] [--profile] [--calls] [--opcodes] [--against SRC [--rounds 4]]``

The month comes from the deterministic recorder simulator (``fairuse.recorder.simulator``). It
measures, best of ``--repeat`` runs each: parsing alone (``parse_event``), the ledger
(``Ledger.process``: parse + dedup + rules), and a full ``fairuse replay`` (ledger + NDJSON
output of violations, enforcement and dead letters, with and without ``--usage``).
``--calls`` adds a figure the machine's load cannot move: Python function calls per event
(cProfile's count) of the ledger and of ``replay --usage`` beyond it; ``--opcodes`` another:
bytecode instructions per event of the ledger (``sys.settrace``), which weighs a function's body,
not only its call. To compare two versions, run this script with ``PYTHONPATH=<other
checkout>/src``, or give ``--against SRC``: it runs this script ``--rounds`` times with the
package in ``SRC`` (e.g. ``git worktree add /tmp/old 7fab574^1``, SRC = ``/tmp/old/src``) and as
many times with this checkout's, alternating (ABBA, so neither goes first more often), then
prints each figure's median per version and their ratio, with the load average before and after
(the same simulated events for both).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from fairuse.events import parse_event
from fairuse.ledger import Ledger
from fairuse.policy import DEFAULT_POLICY
from fairuse.recorder.simulator import FleetConfig, simulate
from fairuse.replay import replay

DAY_MS = 86_400_000


def simulated_month(tenants: int, days: int, seed: int, faults: float) -> list[bytes]:
    """The payloads of a simulated fleet over ``days`` days, in delivery order."""
    config = FleetConfig(
        seed=seed,
        tenants=tenants,
        start_ms=int(datetime(2026, 10, 1, tzinfo=UTC).timestamp() * 1000),
        duration_ms=days * DAY_MS,
        fault_rate=faults,
    )
    return [emission.payload for emission in simulate(config)]


def best_rate(run: Callable[[], object], events: int, repeat: int) -> float:
    """Events per second of CPU time of the fastest of ``repeat`` runs.

    CPU time of this process (one core), so other load on the machine distorts it less than
    wall-clock time would.
    """
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return events / best


def opcodes_of(run: Callable[[], object]) -> int:
    """Bytecode instructions executed in Python code by one ``run()`` (``sys.settrace`` opcode
    events; slow: about a minute per 100,000 events)."""
    count = 0

    def opcode(frame: FrameType, event: str, arg: object) -> Callable[..., object]:
        nonlocal count
        if event == "opcode":
            count += 1
        return opcode

    def enter(frame: FrameType, event: str, arg: object) -> Callable[..., object]:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        return opcode

    sys.settrace(enter)
    try:
        run()
    finally:
        sys.settrace(None)
    return count


def calls_of(run: Callable[[], object]) -> int:
    """Python function calls (cProfile's count, C functions included) of one ``run()``."""
    profiler = cProfile.Profile()
    profiler.runcall(run)
    return pstats.Stats(profiler).total_calls  # type: ignore[attr-defined]


FIGURE = re.compile(r"^(\S.*?)\s{2,}([\d,]+) events/s of CPU")


def compare(args: argparse.Namespace) -> int:
    """Alternate runs of this script with another version's package and with this one's; print
    each figure's median per version and their ratio."""
    this_src = str(Path(__file__).resolve().parents[1] / "src")
    versions = {"other": str(Path(args.against).resolve()), "this": this_src}
    command = [sys.executable, __file__]
    for option in ("tenants", "days", "seed", "repeat", "faults"):
        command += [f"--{option}", str(getattr(args, option))]
    rates: dict[str, dict[str, list[float]]] = {"other": {}, "this": {}}
    print(f"load average before: {os.getloadavg()[0]:.1f}; other = {versions['other']}")
    for round_no in range(args.rounds):
        order = ("other", "this") if round_no % 2 == 0 else ("this", "other")
        for version in order:
            env = {**os.environ, "PYTHONPATH": versions[version]}
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            figures = [m.groups() for m in map(FIGURE.match, out.stdout.splitlines()) if m]
            for name, rate in figures:
                rates[version].setdefault(name, []).append(float(rate.replace(",", "")))
            shown = ", ".join(f"{name} {rate}" for name, rate in figures)
            print(f"round {round_no + 1} {version}: {shown} (load {os.getloadavg()[0]:.1f})")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    for name, other in rates["other"].items():
        this = statistics.median(rates["this"][name])
        before = statistics.median(other)
        print(
            f"{name:28s} median {before:10,.0f} other, {this:10,.0f} this events/s of CPU:"
            f" this/other {this / before:.3f} ({(this / before - 1) * 100:+.1f} %)"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=12)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--faults", type=float, default=0.001)
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile")
    parser.add_argument("--calls", action="store_true", help="print function calls per event")
    parser.add_argument(
        "--opcodes", action="store_true", help="print bytecode instructions per event (slow)"
    )
    parser.add_argument(
        "--against", metavar="SRC", help="compare with the package in SRC (another checkout's src)"
    )
    parser.add_argument("--rounds", type=int, default=4, help="runs per version with --against")
    args = parser.parse_args()
    if args.against:
        return compare(args)

    started = time.perf_counter()
    payloads = simulated_month(args.tenants, args.days, args.seed, args.faults)
    n = len(payloads)
    size_mb = sum(len(p) + 1 for p in payloads) / 1e6
    print(
        f"simulated {n:,} events ({size_mb:.1f} MB), {args.tenants} tenants x {args.days} days, "
        f"seed {args.seed}, in {time.perf_counter() - started:.1f} s"
    )
    lines = [(p, f"bench:{i}") for i, p in enumerate(payloads, 1)]

    def parse_only() -> None:
        for payload in payloads:
            parse_event(payload)

    def ledger_only() -> Ledger:
        ledger = Ledger(DEFAULT_POLICY)
        process = ledger.process
        for payload, source in lines:
            process(payload, source)
        return ledger

    def full_replay(usage: bool) -> Callable[[], object]:
        return lambda: replay(lines, io.BytesIO(), DEFAULT_POLICY, usage=usage, summary=True)

    counts = replay(lines, io.BytesIO(), DEFAULT_POLICY, usage=True)
    print(
        f"records: {counts.violations} violations, {counts.enforcement} enforcement, "
        f"{counts.dead_letters} dead letters, {counts.duplicates} duplicates, "
        f"{counts.usage:,} usage accruals"
    )
    ledger = ledger_only()
    state_bytes = [len(s.to_bytes()) for s in ledger.states.values()]
    mean_bytes = sum(state_bytes) // len(state_bytes)
    keyed = ledger.keys.data  # type: ignore[attr-defined]
    keyed_bytes = sum(len(k) + len(v) for k, v in keyed.items()) // len(state_bytes)
    print(
        f"tenant entry: max {max(state_bytes):,} bytes, mean {mean_bytes:,} bytes"
        f" (to_bytes at the end of the month); keyed state: {len(keyed) // len(state_bytes):,}"
        f" keys, {keyed_bytes:,} bytes per tenant"
    )
    for name, run in (
        ("parse_event only", parse_only),
        ("Ledger.process", ledger_only),
        ("replay (records + summary)", full_replay(False)),
        ("replay --usage", full_replay(True)),
    ):
        rate = best_rate(run, n, args.repeat)
        print(f"{name:28s} {rate:12,.0f} events/s of CPU  ({1e6 / rate:.2f} us/event)")

    if args.calls:
        ledger_calls = calls_of(ledger_only)
        replay_calls = calls_of(full_replay(True))
        print(
            f"function calls per event: Ledger.process {ledger_calls / n:.3f}, "
            f"replay --usage beyond it {(replay_calls - ledger_calls) / n:.3f}"
        )
    if args.opcodes:
        print(f"bytecode instructions per event: Ledger.process {opcodes_of(ledger_only) / n:.1f}")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(ledger_only)
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
