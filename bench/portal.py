"""Portal benchmark: time to the full HTML of each page, first visit and warm, on a simulated
month.

    .venv/bin/python bench/portal.py [--tenants 6] [--days 35] [--runs 20]

Prints figures, asserts nothing. The month (``fairuse simulate``) goes through the core
(:class:`~fairuse.ledger.Ledger`) and the sink's insert path into a fresh embedded chDB store;
the worker's API is served by a small aiohttp app answering with the same ``usage_view`` the
worker uses (the worker's own latency is not the portal's). The portal runs in this process
exactly as ``fairuse portal`` builds it; each page is fetched over HTTP, the first time right
after start (cold: opens the store, loads the templates) and then ``--runs`` times.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
from aiohttp import web

from fairuse.ledger import Ledger, usage_view
from fairuse.policy import DEFAULT_POLICY
from fairuse.portal.app import Portal, build_app
from fairuse.portal.links import sign
from fairuse.settings import load_settings
from fairuse.warehouse.batching import Batcher
from fairuse.warehouse.client import connect
from fairuse.warehouse.migrate import migrate
from fairuse.warehouse.rows import TOPIC_TABLES
from fairuse.warehouse.sink import BatchWriter

PAGES = ("standing", "history", "notices", "notice")


def load_month(events: Path, store: Path) -> Ledger:
    """Replay ``events`` through the core and store events and records in ``store``."""
    ledger = Ledger(DEFAULT_POLICY)
    topics = {f"fairuse.{name}": table for name, table in TOPIC_TABLES.items()}
    batcher = Batcher(topics, max_rows=10**9, max_ms=10**9)
    offsets: dict[str, int] = {}
    for number, line in enumerate(events.read_bytes().splitlines(), 1):
        for topic, payload in [("fairuse.events", line)] + [
            (record.TOPIC, record.to_json()) for record in ledger.process(line, f"e:{number}")
        ]:
            offsets[topic] = offsets.get(topic, -1) + 1
            batcher.add(topic, 0, offsets[topic], payload, 0.0)
    client = connect(f"chdb://{store}")
    migrate(client, events_ttl_days=0)
    writer = BatchWriter(client)

    async def write_all() -> None:
        for batch in batcher.due(0.0, drain=True):
            await writer.write(batch)

    asyncio.run(write_all())
    client.close()
    return ledger


def worker_stub(ledger: Ledger) -> web.Application:
    """The worker's /v1 usage and violations, from the replayed ledger."""

    async def usage(request: web.Request) -> web.Response:
        state = ledger.states.get(request.match_info["tenant"])
        if state is None:
            return web.json_response({"error": "unknown tenant"}, status=404)
        return web.json_response(usage_view(state, DEFAULT_POLICY, state.clock_ms))

    async def violations(request: web.Request) -> web.Response:
        return web.json_response({"tenant_id": request.match_info["tenant"], "violations": []})

    app = web.Application()
    app.add_routes([web.get("/v1/tenants/{tenant}/usage", usage),
                    web.get("/v1/tenants/{tenant}/violations", violations)])  # fmt: skip
    return app


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def store_owner(store: Path) -> subprocess.Popen:
    """A process holding ``store`` and serving queries on it, as the running sink does."""
    code = (
        "import sys, time; from pathlib import Path; "
        "from fairuse.warehouse.client import connect; "
        "from fairuse.warehouse.owner import QueryOwner; "
        f"QueryOwner(connect('chdb://{store}'), Path('{store}')).start(); "
        "print('ready', flush=True); sys.stdin.read()"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert owner.stdout is not None and owner.stdout.readline().strip() == b"ready"
    return owner


async def measure(ledger: Ledger, store: Path, runs: int) -> None:
    worker, worker_url = await serve(worker_stub(ledger))
    settings = load_settings({"FAIRUSE_PORTAL_SECRET": "bench"})
    settings = replace(
        settings,
        warehouse_dsn=f"chdb://{store}",
        portal=replace(settings.portal, worker_url=worker_url),
    )
    portal, url = await serve(build_app(Portal(settings, DEFAULT_POLICY)))
    tenant = max(ledger.states, key=lambda t: len(ledger.states[t].periods))
    prefix = f"{url}/p/{sign('bench', tenant, int(time.time()) + 3600)}"
    try:
        async with aiohttp.ClientSession() as session:
            for page in PAGES:
                timings = []
                for _ in range(runs + 1):
                    started = time.perf_counter()
                    async with session.get(f"{prefix}/{page}") as response:
                        body = await response.read()
                        assert response.status == 200, (page, response.status, body[:300])
                    timings.append((time.perf_counter() - started) * 1000)
                first, warm = timings[0], sorted(timings[1:])
                p95 = warm[int(0.95 * (len(warm) - 1))]
                print(
                    f"{page:9s}: first {first:6.1f} ms, warm median "
                    f"{statistics.median(warm):6.1f} ms, p95 {p95:6.1f} ms, "
                    f"{len(body) / 1024:.0f} KiB"
                )
    finally:
        await portal.cleanup()
        await worker.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=6)
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-portal-") as tmp:
        events = Path(tmp) / "events.ndjson"
        subprocess.run(
            [sys.executable, "-m", "fairuse", "simulate", "--seed", "7", "--tenants",
             str(args.tenants), "--duration", f"{args.days}d", "--heartbeat-s", "7200",
             "--out", str(events)],
            check=True, capture_output=True,
        )  # fmt: skip
        started = time.perf_counter()
        ledger = load_month(events, Path(tmp) / "warehouse")
        lines = sum(1 for _ in events.open("rb"))
        print(f"month: {lines:,} events of {args.tenants} tenants over {args.days} days, "
              f"replayed and stored in {time.perf_counter() - started:.1f} s")  # fmt: skip
        store = Path(tmp) / "warehouse"
        print("the store held by its owner (a running sink):")
        owner = store_owner(store)
        try:
            asyncio.run(measure(ledger, store, args.runs))
        finally:
            owner.communicate(b"")
        print("the store opened by the portal itself at each visit (no sink running):")
        asyncio.run(measure(ledger, store, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
