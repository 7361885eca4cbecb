"""Gateway middleware: ask the worker's decision API before a tenant's request goes through.

Wrap an ASGI app in :class:`FairUseASGI` or a WSGI app in :class:`FairUseWSGI`::

    gate = Gate(GatewayConfig("http://fairuse-worker:6066", token="...", fail_open=True))
    app = FairUseASGI(app, gate)              # or FairUseWSGI(wsgi_app, gate)

For each HTTP request, ``tenant_of`` names the tenant (default: the ``X-Tenant-Id`` header; no
tenant: the request passes unmetered). The :class:`Gate` asks ``GET
/v1/tenants/{tenant}/decision?metric=...`` and keeps the answer for its ``cache_max_age_s``. A
throttled tenant gets ``429 Too Many Requests`` with ``RateLimit-Policy``, ``RateLimit`` and
``Retry-After`` and the decision's reason; an allowed request goes on, and its response gets the
RateLimit headers. A tenant the worker has never seen (404) passes. When the worker cannot be
asked (unreachable, timeout, 5xx, a refused token), ``fail_open`` lets the request pass (``True``,
the default) or answers ``503`` (``False``).
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from fairuse.ledger.decision import ratelimit_headers

log = logging.getLogger(__name__)

TENANT_HEADER = "X-Tenant-Id"


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Where the decision API is, with which token, for which metric, and what to do without it."""

    worker_url: str  # e.g. http://fairuse-worker:6066 (any worker: requests are routed)
    token: str = field(repr=False)  # the admin token, or the one tenant's token
    metric: str = "api_calls"
    fail_open: bool = True
    timeout_s: float = 2.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """Let the request through (``allow``, with ``headers`` for its response), or answer
    ``status`` with ``headers`` and ``body`` instead."""

    allow: bool
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class Gate:
    """Decisions for tenants, cached for their ``cache_max_age_s`` (``clock`` in seconds)."""

    def __init__(self, config: GatewayConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.cache: dict[str, tuple[float, Verdict]] = {}
        self.fetches = 0  # requests made to the decision API

    def url(self, tenant_id: str) -> str:
        """The decision URL of ``tenant_id``."""
        base = self.config.worker_url.rstrip("/")
        tenant = urllib.parse.quote(tenant_id, safe="")
        return f"{base}/v1/tenants/{tenant}/decision?metric={self.config.metric}"

    def _cached(self, tenant_id: str) -> Verdict | None:
        found = self.cache.get(tenant_id)
        if found is None or self.clock() >= found[0]:
            return None
        return found[1]

    def _settle(self, tenant_id: str, status: int | None, body: bytes) -> Verdict:
        """The verdict of a decision API answer (``status`` None: no answer), cached if 200."""
        if status == 200:
            decision = orjson.loads(body)
            headers = ratelimit_headers(decision)
            if decision["allowed"]:
                verdict = Verdict(True, headers=headers)
            else:
                headers["Content-Type"] = "application/json"
                payload = {"error": "throttled by the fair usage policy", "decision": decision}
                verdict = Verdict(False, 429, headers, orjson.dumps(payload))
            max_age = float(decision.get("cache_max_age_s", 0))
            if max_age > 0:
                self.cache[tenant_id] = (self.clock() + max_age, verdict)
            return verdict
        if status == 404:
            return Verdict(True)  # never seen: nothing to throttle
        log.warning("fair-use decision for %s unavailable (status %s)", tenant_id, status)
        if self.config.fail_open:
            return Verdict(True)
        payload = {"error": "fair-use decision unavailable"}
        headers = {"Content-Type": "application/json", "Retry-After": "1"}
        return Verdict(False, 503, headers, orjson.dumps(payload))

    def check(self, tenant_id: str) -> Verdict:
        """The verdict for a request of ``tenant_id`` (blocking: for WSGI)."""
        verdict = self._cached(tenant_id)
        if verdict is not None:
            return verdict
        self.fetches += 1
        request = urllib.request.Request(self.url(tenant_id))
        request.add_header("Authorization", f"Bearer {self.config.token}")
        status: int | None
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        except OSError:
            status, body = None, b""
        return self._settle(tenant_id, status, body)

    async def check_async(self, tenant_id: str) -> Verdict:
        """The verdict for a request of ``tenant_id`` (for ASGI)."""
        verdict = self._cached(tenant_id)
        if verdict is not None:
            return verdict
        self.fetches += 1
        headers = {"Authorization": f"Bearer {self.config.token}"}
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        status: int | None
        try:  # a session per fetch: fetches are rare (cached), and no loop is kept
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(self.url(tenant_id), headers=headers) as response,
            ):
                status, body = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError):
            status, body = None, b""
        return self._settle(tenant_id, status, body)


def asgi_tenant_header(scope: MutableMapping[str, Any]) -> str | None:
    """The ``X-Tenant-Id`` header of an ASGI HTTP scope, or None."""
    wanted = TENANT_HEADER.lower().encode()
    for name, value in scope.get("headers", ()):
        if name.lower() == wanted:
            return value.decode("latin-1").strip() or None
    return None


def wsgi_tenant_header(environ: dict[str, Any]) -> str | None:
    """The ``X-Tenant-Id`` header of a WSGI environ, or None."""
    value = environ.get("HTTP_" + TENANT_HEADER.upper().replace("-", "_"), "")
    return value.strip() or None


ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[..., Any], Callable[..., Any]], Awaitable[None]
]


class FairUseASGI:
    """ASGI middleware: 429 while the tenant is throttled, else the app with RateLimit headers."""

    def __init__(
        self,
        app: ASGIApp,
        gate: Gate,
        tenant_of: Callable[[MutableMapping[str, Any]], str | None] = asgi_tenant_header,
    ) -> None:
        self.app = app
        self.gate = gate
        self.tenant_of = tenant_of

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        tenant = self.tenant_of(scope) if scope["type"] == "http" else None
        if tenant is None:
            await self.app(scope, receive, send)
            return
        verdict = await self.gate.check_async(tenant)
        extra = [(k.lower().encode(), v.encode()) for k, v in verdict.headers.items()]
        if not verdict.allow:
            await send({"type": "http.response.start", "status": verdict.status, "headers": extra})
            await send({"type": "http.response.body", "body": verdict.body})
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

REASONS = {429: "429 Too Many Requests", 503: "503 Service Unavailable"}


class FairUseWSGI:
    """WSGI middleware: 429 while the tenant is throttled, else the app with RateLimit headers."""

    def __init__(
        self,
        app: WSGIApp,
        gate: Gate,
        tenant_of: Callable[[dict[str, Any]], str | None] = wsgi_tenant_header,
    ) -> None:
        self.app = app
        self.gate = gate
        self.tenant_of = tenant_of

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        tenant = self.tenant_of(environ)
        if tenant is None:
            return self.app(environ, start_response)
        verdict = self.gate.check(tenant)
        extra = list(verdict.headers.items())
        if not verdict.allow:
            start_response(REASONS[verdict.status], extra)
            return [verdict.body]

        def start_with_headers(status: str, headers: list[Any], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, *extra], exc_info)

        return self.app(environ, start_with_headers)
