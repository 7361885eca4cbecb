"""The notifier's metrics (prometheus-client) and its HTTP port: /healthz, /readyz, /metrics.

No metric carries a tenant id: a label per tenant would grow without bound.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400)


class NotifierMetrics:
    """The notifier's metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.attempts = Counter(
            "fairuse_notify_attempts",
            "Delivery attempts by channel and outcome (delivered or failed).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "fairuse_notify_dead_lettered",
            "Deliveries given up after their last attempt, sent to the notify dead-letter topic.",
            ["channel"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fairuse_notify_delivery_latency_seconds",
            "Time from the record reaching its topic to its successful delivery.",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.pending = Gauge(
            "fairuse_notify_pending_deliveries",
            "Deliveries not finished yet (in their first attempt or waiting for a retry).",
            registry=self.registry,
        )
        self.subscriptions_error = Gauge(
            "fairuse_notify_subscriptions_error",
            "1 while the subscriptions file on disk is bad and the last good version is in use.",
            registry=self.registry,
        )
        for channel in ("webhook", "email"):
            for outcome in ("delivered", "failed"):
                self.attempts.labels(channel, outcome)
            self.dead_lettered.labels(channel)
            self.latency.labels(channel)


def web_app(metrics: NotifierMetrics, readiness: Callable[[], list[str]]) -> web.Application:
    """``/healthz`` (the process serves), ``/readyz`` (200 once ``readiness()`` lists no
    problem, else 503 with the problems) and ``/metrics`` (Prometheus text format)."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        problems = readiness()
        status = 503 if problems else 200
        return web.json_response({"ready": not problems, "problems": problems}, status=status)

    async def metrics_view(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return app
