"""The worker's HTTP API (version 1, under ``/v1``), routed to the partition owner.

``GET /v1/tenants/{tenant_id}/usage``, ``.../violations`` and ``.../decision?metric=M`` need
``Authorization: Bearer <token>``: the admin token (``FAIRUSE_API_TOKEN``) sees every tenant, a
tenant token (``FAIRUSE_API_TENANT_TOKENS``) only its own. 401 without or with an unknown token,
403 for another tenant's data, 404 for a tenant this pipeline has never seen, 400 for a missing
or unknown metric, 503 with ``Retry-After`` while the worker has no partition assignment yet
(just started, or its join's rebalance still waits for other workers) and so knows no owner, or
while the owner by its assignment does not answer (it died; a rebalance will move its partitions).
``GET /v1/policy`` (any valid token) names the policy in force on this
worker; ``GET /v1/openapi.json`` (no token) is the API's OpenAPI 3.1 document. A request
reaching a worker that does not process the tenant's events partition is forwarded to the one
that does. The unversioned paths of before (``/tenants/...``, ``/policy``) are deprecated
aliases: the same answers, with a ``Deprecation`` header and a ``Link`` to the ``/v1`` path.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import aiohttp
import faust
import orjson
from faust.web.exceptions import ServiceUnavailable

from fairuse.events import METRICS
from fairuse.ledger.decision import ratelimit_headers
from fairuse.policy import policy_fingerprint
from fairuse.settings import Settings
from fairuse.stream.auth import ApiTokens
from fairuse.stream.core import StreamCore

Handler = Callable[..., Awaitable[Any]]

V1 = "/v1"
OWNER_UNKNOWN_RETRY_AFTER_S = 1
"""``Retry-After`` of a 503: a rebalance usually ends within seconds."""


def openapi_document() -> bytes:
    """The worker API's OpenAPI 3.1 document (``src/fairuse/stream/openapi.json``)."""
    return resources.files("fairuse.stream").joinpath("openapi.json").read_bytes()


def register_views(
    app: faust.App, core: StreamCore, events_topic: faust.TopicT, settings: Settings
) -> None:
    """Add the API to ``app``'s web server under ``/v1`` (and the deprecated unversioned
    aliases); tenant requests are routed to the owner of the tenant's ``events_topic``
    partition and answered from ``core``."""
    tokens = ApiTokens.parse(settings.worker.api_token, settings.worker.api_tenant_tokens)
    max_age_s = settings.decision.cache_max_age_s

    def unauthenticated(view: Any) -> Any:
        return view.json(
            {"error": "missing or unknown bearer token"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="fairuse"'},
        )

    def guarded(fun: Handler) -> Handler:
        @functools.wraps(fun)
        async def handler(view: Any, request: Any, tenant_id: str, **kwargs: Any) -> Any:
            access = tokens.check(request.headers.get("Authorization"), tenant_id)
            if access == "unauthenticated":
                return unauthenticated(view)
            if access == "forbidden":
                return view.json({"error": "this token may not read that tenant"}, status=403)
            try:
                response = await fun(view, request, tenant_id=tenant_id, **kwargs)
            except ServiceUnavailable:  # Faust's router: no owner known for the partition
                response = view.json(
                    {
                        "error": "the owner of this tenant's partition is not known yet (the "
                        "workers are rebalancing); retry"
                    },
                    status=503,
                )
            except aiohttp.ClientConnectionError:  # forwarding: the owner left without a word
                response = view.json(
                    {
                        "error": "the owner of this tenant's partition does not answer (a "
                        "rebalance will move its partitions); retry"
                    },
                    status=503,
                )
            if response.status == 503:  # also one relayed from the owner, without its headers
                response.headers["Retry-After"] = str(OWNER_UNKNOWN_RETRY_AFTER_S)
            return response

        return handler

    def unknown(view: Any, tenant_id: str) -> Any:
        return view.json({"error": f"unknown tenant {tenant_id!r}"}, status=404)

    def page(path: str, fun: Handler) -> None:
        """Serve ``fun`` at ``/v1{path}`` and, deprecated, at ``path``."""
        app.page(V1 + path, name=f"{fun.__name__}_v1")(fun)

        @functools.wraps(fun)
        async def alias(view: Any, request: Any, **kwargs: Any) -> Any:
            response = await fun(view, request, **kwargs)
            response.headers["Deprecation"] = "true"
            response.headers["Link"] = f'<{V1}{request.path}>; rel="successor-version"'
            return response

        app.page(path, name=f"{fun.__name__}_deprecated")(alias)

    @guarded
    @app.topic_route(topic=events_topic, match_info="tenant_id")
    async def tenant_usage(view: Any, request: Any, tenant_id: str) -> Any:
        usage = core.usage(tenant_id)
        return unknown(view, tenant_id) if usage is None else view.json(usage)

    @guarded
    @app.topic_route(topic=events_topic, match_info="tenant_id")
    async def tenant_violations(view: Any, request: Any, tenant_id: str) -> Any:
        found = core.violations_of(tenant_id)
        if found is None:
            return unknown(view, tenant_id)
        return view.json({"tenant_id": tenant_id, "violations": found})

    @app.topic_route(topic=events_topic, match_info="tenant_id")
    async def owner_decision(view: Any, request: Any, tenant_id: str) -> Any:
        decision = core.decision(tenant_id, request.query["metric"])
        if decision is None:
            return unknown(view, tenant_id)
        decision["cache_max_age_s"] = max_age_s
        return view.json(decision, headers=ratelimit_headers(decision))

    @guarded
    async def tenant_decision(view: Any, request: Any, tenant_id: str) -> Any:
        metric = request.query.get("metric")
        if metric not in METRICS:
            problem = "missing metric" if not metric else f"unknown metric {metric!r}"
            return view.json(
                {"error": f"{problem}; one of {', '.join(METRICS)}", "metrics": list(METRICS)},
                status=400,
            )
        response = await owner_decision(view, request, tenant_id=tenant_id)
        if response.status == 200 and "RateLimit" not in response.headers:
            # Forwarded from the owner: Faust's router keeps the body, not the headers.
            response.headers.update(ratelimit_headers(orjson.loads(response.body)))
            response.headers["Via"] = "1.1 fairuse-worker"
        return response

    async def policy_in_force(view: Any, request: Any) -> Any:
        if tokens.check(request.headers.get("Authorization"), "") == "unauthenticated":
            return unauthenticated(view)
        policy = core.policy
        return view.json(
            {
                "fingerprint": policy_fingerprint(policy),
                "revisions": [revision.id for revision in policy.revisions],
            }
        )

    page("/tenants/{tenant_id}/usage", tenant_usage)
    page("/tenants/{tenant_id}/violations", tenant_violations)
    page("/policy", policy_in_force)
    app.page(V1 + "/tenants/{tenant_id}/decision")(tenant_decision)

    @app.page(V1 + "/openapi.json")
    async def openapi(view: Any, request: Any) -> Any:
        return view.bytes(openapi_document(), content_type="application/json")
