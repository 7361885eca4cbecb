"""``fairuse ingest``: run the HTTP ingest service (FAIRUSE_INGEST_* and FAIRUSE_KAFKA_*)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from dataclasses import replace

from aiohttp import web

from fairuse.errors import ConfigError
from fairuse.ingest.app import build_app
from fairuse.ingest.auth import IngestTokens
from fairuse.ingest.gateway import BrokerGateway
from fairuse.settings import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``ingest``."""
    p = subparsers.add_parser(
        "ingest",
        help="HTTP ingest of events (JSON, NDJSON, CloudEvents) into the events topic",
        description="Serve POST /v1/events, /healthz, /readyz, /metrics and /v1/openapi.json. "
        "Tokens come from FAIRUSE_INGEST_TOKENS ('token=tenant-a,tenant-b;token2=*').",
    )
    p.add_argument("--host", help="listen address (default FAIRUSE_INGEST_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default FAIRUSE_INGEST_PORT or 8088; 0 = any)")
    p.set_defaults(func=run_ingest)


async def serve(host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM; print the bound address on stdout once listening."""
    settings = load_settings()
    ingest = replace(settings.ingest, host=host, port=port)
    if not IngestTokens.parse(ingest.tokens).scopes:
        raise ConfigError("set FAIRUSE_INGEST_TOKENS (e.g. 'secret=tenant-a,tenant-b')")
    app = build_app(ingest, BrokerGateway(settings.kafka, ingest.broker_timeout_ms))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0]
    print(f"ingest: listening on http://{bound[0]}:{bound[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run_ingest(args: argparse.Namespace) -> int:
    """Handler of ``fairuse ingest``."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    settings = load_settings().ingest
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(host, port))
    return 0
