"""``fairuse simulate``: run the fleet simulator into Kafka (default) or an NDJSON file."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from fairuse.errors import ConfigError
from fairuse.policy import parse_instant
from fairuse.recorder.http import send_over_http
from fairuse.recorder.simulator import DAY_MS, Emission, FleetConfig, simulate
from fairuse.recorder.spool import SpoolOptions

SpoolArgs = tuple[Path, SpoolOptions] | None

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}
DEFAULT_DURATION_MS = 7 * DAY_MS


def parse_duration_ms(text: str) -> int:
    """``30d``, ``12h``, ``90m``, ``45s``, ``1d12h`` -> milliseconds; ConfigError if malformed."""
    compact = text.replace(" ", "")
    parts = _DURATION_RE.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ConfigError(f"bad duration {text!r}; use e.g. 30d, 12h, 90m, 45s or 1d12h")
    total = sum(float(n) * _UNIT_MS[u] for n, u in parts)
    if total <= 0:
        raise ConfigError(f"duration {text!r} must be positive")
    return int(total)


def parse_start_ms(text: str) -> int:
    """An ISO date or date-time (UTC unless it names an offset) -> epoch milliseconds."""
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise ConfigError(f"bad --start {text!r}; use an ISO date like 2026-11-02") from exc


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``simulate``."""
    p = subparsers.add_parser(
        "simulate",
        help="run the deterministic recorder-fleet simulator into Kafka or an NDJSON file",
        description="Simulate a recorder fleet. Without --out, events go to the events topic "
        "through the recorder client (FAIRUSE_KAFKA_* settings).",
    )
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--tenants", type=_positive_int, default=12, help="tenants (default 12)")
    p.add_argument("--start", default="2026-11-02", help="event-time start, ISO (UTC)")
    p.add_argument(
        "--duration", help="event-time length, e.g. 30d, 12h (default 7d unless --events)"
    )
    p.add_argument("--events", type=_positive_int, help="stop after this many events")
    p.add_argument(
        "--heartbeat-s",
        type=_positive_int,
        default=60,
        help="heartbeat period in event-time seconds (default 60)",
    )
    p.add_argument(
        "--breakers",
        type=_share,
        default=1 / 3,
        help="share of tenants breaking the policy (default 1/3)",
    )
    p.add_argument(
        "--faults",
        type=_share,
        nargs="?",
        const=0.001,
        default=0.0,
        help="rate of injected faults per event (default 0; bare --faults = 0.001)",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="event-time seconds per wall second (default 0 = as fast as possible)",
    )
    p.add_argument("--rate", type=float, default=0.0, help="cap on events per wall second")
    p.add_argument("--out", type=Path, help="write NDJSON here ('-' = stdout) instead of Kafka")
    p.add_argument(
        "--spool",
        type=Path,
        metavar="DIR",
        help="send through the recorder client's durable spool in DIR (survives broker outages "
        "and restarts; a rerun resumes what DIR holds)",
    )
    p.add_argument(
        "--spool-max-bytes",
        type=_positive_int,
        default=SpoolOptions().max_bytes,
        help="spool bound in bytes; send waits when it is full (default 1 GiB)",
    )
    p.add_argument(
        "--via",
        nargs=2,
        metavar=("http", "URL"),
        help="send through the HTTP ingest service at URL ('fairuse ingest') instead of Kafka",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("FAIRUSE_INGEST_TOKEN"),
        help="ingest token for --via http (default FAIRUSE_INGEST_TOKEN)",
    )
    p.add_argument(
        "--batch", type=_positive_int, default=1000, help="events per request with --via http"
    )
    p.add_argument(
        "--retry-for",
        type=float,
        default=600.0,
        help="seconds to keep retrying a batch the ingest service did not take (default 600)",
    )
    p.add_argument("--progress", action="store_true", help="progress on stderr even if no TTY")
    p.set_defaults(func=run_simulate)


def config_from_args(args: argparse.Namespace) -> FleetConfig:
    """The :class:`FleetConfig` the arguments describe."""
    if args.duration:
        duration: int | None = parse_duration_ms(args.duration)
    else:
        duration = None if args.events else DEFAULT_DURATION_MS
    return FleetConfig(
        seed=args.seed,
        tenants=args.tenants,
        start_ms=parse_start_ms(args.start),
        duration_ms=duration,
        heartbeat_s=args.heartbeat_s,
        breaker_share=args.breakers,
        fault_rate=args.faults,
    )


def bounded(config: FleetConfig, events: int | None) -> Iterator[Emission]:
    """The simulator's emissions, at most ``events`` of them."""
    for n, emission in enumerate(simulate(config)):
        if events is not None and n >= events:
            return
        yield emission


class Progress:
    """Plain-text ``\\r`` progress on stderr: events, events/s, event time reached."""

    def __init__(self, enabled: bool, every: int = 20_000) -> None:
        self.enabled = enabled
        self.every = every
        self.count = 0
        self.faults = 0
        self.started = time.monotonic()
        self.last_at = 0

    def tick(self, emission: Emission) -> None:
        self.count += 1
        self.faults += emission.fault is not None
        self.last_at = emission.at
        if self.enabled and self.count % self.every == 0:
            sys.stderr.write(f"\r{self.line()}")
            sys.stderr.flush()

    def counted(self, emissions: Iterable[Emission]) -> Iterator[Emission]:
        """``emissions``, ticking for each."""
        for emission in emissions:
            self.tick(emission)
            yield emission

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        reached = datetime.fromtimestamp(self.last_at / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        return (
            f"simulate: {self.count:,} events ({self.faults} faults), "
            f"{self.count / elapsed:,.0f} events/s, event time {reached} UTC"
        )

    def finish(self) -> None:
        if self.enabled:
            sys.stderr.write("\r")
        sys.stderr.write(f"{self.line()}, {time.monotonic() - self.started:.1f} s\n")


class Pacer:
    """Holds emissions back so event time runs at ``speed`` x wall time and/or ``rate`` events/s.

    ``delay(emission)`` returns how long to wait before sending it (0 when unpaced).
    """

    def __init__(self, speed: float, rate: float, start_ms: int) -> None:
        self.speed = speed
        self.rate = rate
        self.start_ms = start_ms
        self.wall0 = time.monotonic()
        self.sent = 0

    @property
    def paced(self) -> bool:
        """True if emissions are held back at all."""
        return self.speed > 0 or self.rate > 0

    def delay(self, emission: Emission) -> float:
        due = 0.0
        if self.speed > 0:
            due = max(due, (emission.at - self.start_ms) / 1000 / self.speed)
        if self.rate > 0:
            due = max(due, self.sent / self.rate)
        self.sent += 1
        return max(0.0, due - (time.monotonic() - self.wall0))


def write_ndjson(
    emissions: Iterable[Emission], out: BinaryIO, pacer: Pacer, progress: Progress
) -> None:
    """Write one payload per line."""
    for emission in emissions:
        wait = pacer.delay(emission)
        if wait > 0.001:
            out.flush()
            time.sleep(wait)
        out.write(emission.payload)
        out.write(b"\n")
        progress.tick(emission)


async def send_to_kafka(
    emissions: Iterable[Emission], pacer: Pacer, progress: Progress, spool: SpoolArgs = None
) -> None:
    """Send every payload through the recorder client (key = tenant id), then flush.

    With ``spool`` (directory, options) the client spools; the flush waits until the spool is
    delivered, through broker outages.
    """
    from fairuse.recorder.client import RecorderClient
    from fairuse.settings import load_settings

    spool_dir, options = spool if spool else (None, None)
    async with RecorderClient(load_settings().kafka, spool_dir=spool_dir, spool=options) as client:
        if not pacer.paced:
            await client.send_many_raw(
                (emission.tenant_id.encode(), emission.payload)
                for emission in progress.counted(emissions)
            )
            return
        for emission in emissions:
            wait = pacer.delay(emission)
            if wait > 0.001:
                await asyncio.sleep(wait)
            await client.send_raw(emission.tenant_id.encode(), emission.payload)
            progress.tick(emission)


def quiet_client_logs() -> None:
    """Keep aiokafka's connection warnings off stderr: failures surface as one BrokerError line."""
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())


def run_simulate(args: argparse.Namespace) -> int:
    """Handler of ``fairuse simulate``."""
    config = config_from_args(args)
    quiet_client_logs()
    emissions = bounded(config, args.events)
    progress = Progress(enabled=args.progress or sys.stderr.isatty())
    pacer = Pacer(args.speed, args.rate, config.start_ms)
    if args.via:
        kind, url = args.via
        if kind != "http":
            raise ConfigError(f"--via {kind}: only 'http' is known (--via http URL)")
        if args.out or args.spool:
            raise ConfigError("--via http sends to the ingest service: no --out or --spool")
        totals = asyncio.run(
            send_over_http(
                emissions,
                url,
                args.token,
                batch=args.batch,
                pacer=pacer,
                progress=progress,
                retry_for_s=args.retry_for,
            )
        )
        progress.finish()
        print(totals.line(), file=sys.stderr)
        return 0
    if args.out is None:
        spool = (
            (
                args.spool,
                SpoolOptions(
                    max_bytes=args.spool_max_bytes,
                    segment_bytes=min(args.spool_max_bytes, SpoolOptions().segment_bytes),
                ),
            )
            if args.spool
            else None
        )
        asyncio.run(send_to_kafka(emissions, pacer, progress, spool))
    else:
        if str(args.out) == "-":
            write_ndjson(emissions, sys.stdout.buffer, pacer, progress)
            sys.stdout.buffer.flush()
        else:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("wb") as out:
                write_ndjson(emissions, out, pacer, progress)
    progress.finish()
    return 0
