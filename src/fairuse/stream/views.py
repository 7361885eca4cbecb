"""The worker's HTTP API: live usage and violations of a tenant, routed to the partition owner.

``GET /tenants/{tenant_id}/usage`` and ``GET /tenants/{tenant_id}/violations`` need
``Authorization: Bearer <token>``: the admin token (``FAIRUSE_API_TOKEN``) sees every tenant, a
tenant token (``FAIRUSE_API_TENANT_TOKENS``) only its own. 401 without or with an unknown token,
403 for another tenant's data, 404 for a tenant this pipeline has never seen. ``GET /policy``
(any valid token) names the policy in force on this worker. A request reaching a
worker that does not process the tenant's events partition is forwarded to the one that does.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from fairuse.policy import policy_fingerprint
from fairuse.settings import Settings
from fairuse.stream.auth import ApiTokens
from fairuse.stream.core import StreamCore

Handler = Callable[..., Awaitable[Any]]


def register_views(
    app: faust.App, core: StreamCore, events_topic: faust.TopicT, settings: Settings
) -> None:
    """Add the tenant endpoints to ``app``'s web server; requests are routed to the owner of
    the tenant's ``events_topic`` partition and answered from ``core``."""
    tokens = ApiTokens.parse(settings.worker.api_token, settings.worker.api_tenant_tokens)

    def guarded(fun: Handler) -> Handler:
        @functools.wraps(fun)
        async def handler(view: Any, request: Any, tenant_id: str, **kwargs: Any) -> Any:
            access = tokens.check(request.headers.get("Authorization"), tenant_id)
            if access == "unauthenticated":
                return view.json(
                    {"error": "missing or unknown bearer token"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="fairuse"'},
                )
            if access == "forbidden":
                return view.json({"error": "this token may not read that tenant"}, status=403)
            return await fun(view, request, tenant_id=tenant_id, **kwargs)

        return handler

    def unknown(view: Any, tenant_id: str) -> Any:
        return view.json({"error": f"unknown tenant {tenant_id!r}"}, status=404)

    @app.page("/tenants/{tenant_id}/usage")
    @guarded
    @app.topic_route(topic=events_topic, match_info="tenant_id")
    async def tenant_usage(view: Any, request: Any, tenant_id: str) -> Any:
        usage = core.usage(tenant_id)
        return unknown(view, tenant_id) if usage is None else view.json(usage)

    @app.page("/tenants/{tenant_id}/violations")
    @guarded
    @app.topic_route(topic=events_topic, match_info="tenant_id")
    async def tenant_violations(view: Any, request: Any, tenant_id: str) -> Any:
        found = core.violations_of(tenant_id)
        if found is None:
            return unknown(view, tenant_id)
        return view.json({"tenant_id": tenant_id, "violations": found})

    @app.page("/policy")
    async def policy_in_force(view: Any, request: Any) -> Any:
        if tokens.check(request.headers.get("Authorization"), "") == "unauthenticated":
            return view.json({"error": "missing or unknown bearer token"}, status=401)
        policy = core.policy
        return view.json(
            {
                "fingerprint": policy_fingerprint(policy),
                "revisions": [revision.id for revision in policy.revisions],
            }
        )
