"""The aiohttp application of ``fairuse ingest``: ``POST /v1/events`` and the probes.

Every answer is JSON. ``POST /v1/events`` validates each event with ``parse_event`` and answers
per event (``accepted``, or ``rejected`` with the contract's reason and detail); the valid events
the token may write are produced (key = tenant id, the canonical ``encode_event`` payload) and
the answer is 202 only once Kafka acknowledged them all (``acks="all"``). See docs/recorder.md.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from fairuse.events import Event, encode_event, event_key
from fairuse.ingest.auth import IngestTokens, RateLimiter, may_write, retry_after
from fairuse.ingest.decode import CONTENT_TYPES, BadBody, items
from fairuse.ingest.gateway import BrokerGateway, BrokerUnavailable
from fairuse.settings import IngestSettings

REQUESTS = Counter("fairuse_ingest_requests", "POST /v1/events requests by HTTP status", ["status"])
EVENTS = Counter("fairuse_ingest_events", "Events received by result", ["result"])
LATENCY = Histogram(
    "fairuse_ingest_request_seconds",
    "Time to answer POST /v1/events (202s wait for the broker's acknowledgement)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

GATEWAY = web.AppKey("gateway", BrokerGateway)
SETTINGS = web.AppKey("settings", IngestSettings)
TOKENS = web.AppKey("tokens", IngestTokens)
LIMITER = web.AppKey("limiter", RateLimiter)


def problem(status: int, error: str, detail: str, **headers: str) -> web.Response:
    """A JSON error answer ``{"error", "detail"}``."""
    REQUESTS.labels(str(status)).inc()
    body = orjson.dumps({"error": error, "detail": detail})
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


async def post_events(request: web.Request) -> web.Response:
    """``POST /v1/events``."""
    started = time.perf_counter()
    try:
        return await _post_events(request)
    finally:
        LATENCY.observe(time.perf_counter() - started)


async def _post_events(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    scope = request.app[TOKENS].tenants_of(request.headers.get("Authorization"))
    if scope is None:
        return problem(
            401,
            "unauthenticated",
            "send 'Authorization: Bearer <ingest token>' with a token of FAIRUSE_INGEST_TOKENS",
            **{"WWW-Authenticate": "Bearer"},
        )
    token, tenants = scope
    content_type = request.content_type
    if content_type not in CONTENT_TYPES:
        return problem(
            415, "unsupported_media_type", f"Content-Type must be one of {', '.join(CONTENT_TYPES)}"
        )
    too_large = (
        f"the body is over {settings.max_body_bytes} bytes; split the events into smaller requests"
    )
    if (request.content_length or 0) > settings.max_body_bytes:
        return problem(413, "body_too_large", too_large)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return problem(413, "body_too_large", too_large)
    try:
        received = items(body, content_type)
    except BadBody as exc:
        return problem(400, exc.reason, exc.detail)
    if not received:
        return problem(400, "no_events", "the body holds no events")
    if len(received) > settings.max_events:
        return problem(
            413,
            "too_many_events",
            f"{len(received)} events in one request; send at most {settings.max_events} per "
            "request",
        )
    wait_s = request.app[LIMITER].take(token, len(received))
    if wait_s > 0:
        return problem(
            429,
            "rate_limited",
            f"over {settings.rate_events_per_s} events/s for this token; retry after "
            f"{retry_after(wait_s)} s with the same events",
            **{"Retry-After": retry_after(wait_s)},
        )
    results: list[dict[str, Any]] = []
    accepted: list[Event] = []
    for index, item in enumerate(received):
        parsed = item.parsed
        if isinstance(parsed, Event):
            if may_write(tenants, parsed.tenant_id):
                accepted.append(parsed)
                results.append({"index": index, "event_id": parsed.event_id, "result": "accepted"})
                continue
            results.append(
                {
                    "index": index,
                    "event_id": parsed.event_id,
                    "result": "rejected",
                    "status": 403,
                    "reason": "forbidden_tenant",
                    "detail": f"this token may not write events of tenant '{parsed.tenant_id}'",
                }
            )
            continue
        results.append(
            {
                "index": index,
                "event_id": parsed.event_id,
                "result": "rejected",
                "status": 400,
                "reason": parsed.reason,
                "detail": parsed.detail,
            }
        )
    if accepted:
        try:
            await request.app[GATEWAY].produce(
                [(event_key(event), encode_event(event)) for event in accepted]
            )
        except BrokerUnavailable as exc:
            return problem(
                503,
                "broker_unavailable",
                f"{exc}; none of these events is known to be stored: retry the same request "
                f"(same event ids, duplicates are dropped) after {settings.retry_after_s} s",
                **{"Retry-After": str(settings.retry_after_s)},
            )
    rejected = len(results) - len(accepted)
    EVENTS.labels("accepted").inc(len(accepted))
    EVENTS.labels("rejected").inc(rejected)
    if accepted:
        status = 202
    elif all(r.get("status") == 403 for r in results):
        status = 403
    else:
        status = 400
    REQUESTS.labels(str(status)).inc()
    body = {"accepted": len(accepted), "rejected": rejected, "results": results}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


async def healthz(_request: web.Request) -> web.Response:
    """``GET /healthz``: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """``GET /readyz``: 200 once the producer is started and the broker answers, else 503."""
    ready, why = await request.app[GATEWAY].ready()
    return web.json_response(
        {"status": "ready" if ready else "not ready", "detail": why}, status=200 if ready else 503
    )


async def metrics(_request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text format."""
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def openapi_document() -> bytes:
    """The service's OpenAPI 3.1 document (``src/fairuse/ingest/openapi.json``)."""
    return resources.files("fairuse.ingest").joinpath("openapi.json").read_bytes()


async def openapi(_request: web.Request) -> web.Response:
    """``GET /v1/openapi.json``."""
    return web.Response(body=openapi_document(), content_type="application/json")


def build_app(settings: IngestSettings, gateway: BrokerGateway) -> web.Application:
    """The application; it starts and stops ``gateway`` with itself."""
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[GATEWAY] = gateway
    app[TOKENS] = IngestTokens.parse(settings.tokens)
    rate = float(settings.rate_events_per_s)
    app[LIMITER] = RateLimiter(rate=rate, burst=max(rate, float(settings.max_events)))
    app.router.add_post("/v1/events", post_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/openapi.json", openapi)

    async def lifecycle(_app: web.Application):  # type: ignore[no-untyped-def]
        await gateway.start()
        yield
        await gateway.stop()

    app.cleanup_ctx.append(lifecycle)
    return app
