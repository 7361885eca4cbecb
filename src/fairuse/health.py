"""``/metrics``, ``/healthz`` and ``/readyz`` for fairuse's long-running services.

``/metrics`` is the Prometheus text format of one registry; ``/healthz`` answers 200 while the
process's event loop runs; ``/readyz`` answers 200 when the service's readiness check passes
and 503 otherwise, with a JSON body naming each condition. The worker registers these pages on
its Faust web server (:mod:`fairuse.stream.health`); the sink, which has none, runs a
:class:`ProbeServer` (aiohttp, already a dependency of Faust) on ``FAIRUSE_SINK_WEB_PORT``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from fairuse.errors import ConfigError

log = logging.getLogger(__name__)


def new_registry() -> CollectorRegistry:
    """A registry for one service's metrics, with the process's CPU, memory and file series.

    Counters and histograms get no ``*_created`` samples (Prometheus ignores them in the text
    format; they would double the series of a process).
    """
    disable_created_metrics()
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


Conditions = Mapping[str, bool]
"""Named readiness conditions, e.g. ``{"connected": True}``: ready when all are true."""

METRICS_HEADERS = {"Content-Type": CONTENT_TYPE_LATEST}


def metrics_text(registry: CollectorRegistry) -> bytes:
    """The registry's samples in the Prometheus text exposition format."""
    return generate_latest(registry)


def readiness(conditions: Conditions) -> tuple[int, dict[str, object]]:
    """The HTTP status (200 or 503) and JSON body of ``/readyz`` for ``conditions``."""
    ready = all(conditions.values())
    return (200 if ready else 503), {"ready": ready, "conditions": dict(conditions)}


class ProbeServer:
    """The three endpoints on their own aiohttp server (for services without a web server)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        conditions: Callable[[], Conditions],
        host: str,
        port: int,
    ) -> None:
        self._registry = registry
        self._conditions = conditions
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen on ``host:port``; raise ConfigError if the port is taken."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self._host, self._port).start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ConfigError(
                f"cannot serve /metrics on {self._host}:{self._port}: {exc.strerror or exc}"
            ) from exc
        log.info("serving /metrics, /healthz, /readyz on http://%s:%d", self._host, self._port)

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=metrics_text(self._registry), headers=METRICS_HEADERS)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def _readyz(self, request: web.Request) -> web.Response:
        status, body = readiness(self._conditions())
        return web.json_response(body, status=status)
