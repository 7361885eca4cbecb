"""The probe server of services without a web server (the sink): the three endpoints."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from prometheus_client import Counter

from fairuse.errors import ConfigError
from fairuse.health import ProbeServer, new_registry


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_readyz_follows_the_conditions_and_metrics_serve_the_registry() -> None:
    registry = new_registry()
    Counter("fairuse_test_things", "things", registry=registry).inc(3)
    conditions = {"warehouse_connected": False, "consuming": True}
    port = _free_port()

    async def run() -> list[tuple[int, object]]:
        server = ProbeServer(registry, lambda: conditions, "127.0.0.1", port)
        await server.start()
        seen: list[tuple[int, object]] = []
        try:
            async with aiohttp.ClientSession() as http:
                for path in ("/healthz", "/readyz"):
                    async with http.get(f"http://127.0.0.1:{port}{path}") as response:
                        seen.append((response.status, await response.json()))
                conditions["warehouse_connected"] = True
                async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                    seen.append((response.status, await response.json()))
                async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                    assert response.headers["Content-Type"].startswith("text/plain")
                    seen.append((response.status, await response.text()))
        finally:
            await server.close()
        return seen

    healthz, not_ready, ready, metrics = asyncio.run(run())
    assert healthz == (200, {"alive": True})
    assert not_ready == (
        503,
        {"ready": False, "conditions": {"warehouse_connected": False, "consuming": True}},
    )
    assert ready[0] == 200
    assert metrics[0] == 200 and "fairuse_test_things_total 3.0" in str(metrics[1])
    assert "fairuse_test_things_created" not in str(metrics[1])
    assert "process_cpu_seconds_total" in str(metrics[1])


def test_a_taken_port_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ProbeServer(new_registry(), dict, "127.0.0.1", port)
        with pytest.raises(ConfigError, match=f"cannot serve /metrics on 127.0.0.1:{port}"):
            asyncio.run(server.start())
