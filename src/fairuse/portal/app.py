"""The portal's web application: signed-link access, the four pages and the notice form.

Every path starts ``/p/{token}/``. A token that is tampered with, expired, or for another tenant
gets the same 403 page, which names nothing. Pages are rendered on the server (Jinja2,
autoescaped) with inline SVG; no script, no external resource.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import orjson
from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from fairuse.errors import FairUseError
from fairuse.policy import Policy
from fairuse.portal import pages
from fairuse.portal.links import Grant, verify
from fairuse.portal.notice_form import NOTICE_METRICS, NoticeRequest, validate
from fairuse.portal.sources import Warehouse, WorkerApi, WorkerUnavailable
from fairuse.recorder.client import RecorderClient
from fairuse.settings import Settings
from fairuse.warehouse import reports

log = logging.getLogger(__name__)

_TENANT_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MONTH_RE = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
DENIED = "This link is not valid. Ask your account manager for a new one."
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; base-uri 'none'"
    ),
}


class NoticeSender:
    """Sends prior notices through the recorder client, each event id once per process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: RecorderClient | None = None
        self._sends: dict[str, asyncio.Future[None]] = {}
        self.pending: dict[str, dict[str, dict[str, Any]]] = {}  # tenant -> event id -> payload

    async def submit(self, request: NoticeRequest) -> bool:
        """Send ``request`` and wait for the broker's acknowledgement; a repeat of an event id
        already sent (or in flight) waits for that send instead. True if this call sent it."""
        event_id = request.event.event_id
        sending = self._sends.get(event_id)
        fresh = sending is None
        if sending is None:
            sending = self._sends[event_id] = asyncio.ensure_future(self._send(request))
        try:
            await asyncio.shield(sending)
        except BaseException:
            if fresh:
                self._sends.pop(event_id, None)
            raise
        return fresh

    async def _send(self, request: NoticeRequest) -> None:
        if self._client is None:
            client = RecorderClient(self._settings.kafka)
            await client.start()
            self._client = client
        payload = request.payload()
        await self._client.send_raw(request.event.tenant_id.encode(), orjson.dumps(payload))
        await self._client.flush()
        self.pending.setdefault(request.event.tenant_id, {})[request.event.event_id] = payload

    def forget(self, tenant: str, event_ids: set[str]) -> None:
        """Stop keeping the notices of ``event_ids`` (reflected by the worker and stored)."""
        mine = self.pending.get(tenant, {})
        for event_id in event_ids & set(mine):
            del mine[event_id]

    def prior_notices(
        self,
        tenant: str,
        recorded: list[dict[str, Any]],
        usage: dict[str, Any] | None,
        at_ms: int,
        timezone: str,
    ) -> list[dict[str, Any]]:
        """The tenant's prior notices (:func:`pages.prior_notices`) as the worker's ``usage``
        view reflects them (None: the worker did not answer; a worker from before the view
        listed notices leaves the warehouse to say which are recorded); forgets those both
        reflected and stored (their reason is in the warehouse's raw event)."""
        sent = list(self.pending.get(tenant, {}).values())
        ledger = None if usage is None else usage.get("notices")
        older = usage is not None and ledger is None
        prior = pages.prior_notices(recorded, sent, ledger, at_ms, timezone, older)
        reflected = {n["event_id"] for n in prior if n["state"] != "pending"}
        self.forget(tenant, reflected & {row["event_id"] for row in recorded})
        return prior

    async def close(self) -> None:
        """Flush and stop the producer."""
        if self._client is not None:
            await self._client.close()


class Portal:
    """The portal's state: sources, the policy, the notice sender and the templates."""

    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.clock = clock
        self.warehouse = Warehouse(settings.resolved_warehouse_dsn)
        self.sender = NoticeSender(settings)
        self.templates = Environment(
            loader=PackageLoader("fairuse.portal", "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._session: aiohttp.ClientSession | None = None

    @property
    def worker(self) -> WorkerApi:
        """The worker's API client (the session opens with the application)."""
        assert self._session is not None
        portal = self.settings.portal
        return WorkerApi(
            self._session, portal.worker_url, portal.worker_token, portal.worker_timeout_s
        )

    async def start(self, _app: web.Application) -> None:
        """Compile the templates and open the HTTP session to the worker."""
        for name in self.templates.list_templates():
            self.templates.get_template(name)
        self._session = aiohttp.ClientSession()

    async def stop(self, _app: web.Application) -> None:
        """Close the session, the producer and the warehouse reader."""
        if self._session is not None:
            await self._session.close()
        await self.sender.close()
        self.warehouse.close()

    def render(self, name: str, status: int = 200, **context: Any) -> web.Response:
        """A page from template ``name``."""
        text = self.templates.get_template(name).render(**context)
        return web.Response(
            text=text, status=status, content_type="text/html", headers=SECURITY_HEADERS
        )


def _denied() -> web.HTTPForbidden:
    return web.HTTPForbidden(
        text=f"<!doctype html><html lang=en><title>Link not valid</title><p>{DENIED}</p></html>",
        content_type="text/html",
        headers=SECURITY_HEADERS,
    )


def build_app(portal: Portal) -> web.Application:
    """The aiohttp application of ``portal``."""

    app = web.Application()
    app.on_startup.append(portal.start)
    app.on_cleanup.append(portal.stop)
    views = Views(portal)
    app.add_routes(
        [
            web.get("/healthz", views.healthz),
            web.get("/readyz", views.healthz),
            web.get("/p/{token}/", views.home),
            web.get("/p/{token}/standing", views.standing),
            web.get("/p/{token}/history", views.history),
            web.get("/p/{token}/notices", views.notices),
            web.get("/p/{token}/notice", views.notice_form),
            web.post("/p/{token}/notice", views.notice_submit),
        ]
    )
    return app


class Views:
    """The request handlers."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness and readiness (the portal holds no state; pages say what is missing)."""
        return web.json_response({"status": "ok"})

    def _grant(self, request: web.Request) -> Grant:
        """The grant of the link's token; 403 (naming nothing) for a bad or expired one, or
        for a tenant link asking for another tenant."""
        portal = self.portal
        grant = verify(
            portal.settings.portal.secret or "", request.match_info["token"], portal.clock()
        )
        asked = request.query.get("tenant")
        if grant is None or (asked is not None and not grant.may_read(asked)):
            raise _denied()
        return grant

    def _tenant(self, request: web.Request) -> str | None:
        """The tenant the request may see, or None for an admin link without ``?tenant``."""
        grant = self._grant(request)
        tenant = request.query.get("tenant") or (None if grant.admin else grant.tenant)
        if tenant is not None and not _TENANT_RE.fullmatch(tenant):
            raise web.HTTPBadRequest(text="not a tenant id")
        return tenant

    def _page(self, request: web.Request, tenant: str, page: str) -> dict[str, Any]:
        grant = self._grant(request)
        now_ms = int(self.portal.clock() * 1000)
        _, limits = self.portal.policy.limits_at(tenant, now_ms)
        query = f"?tenant={tenant}" if grant.admin else ""
        return {
            "tenant": tenant,
            "admin": grant.admin,
            "page": page,
            "base": f"/p/{request.match_info['token']}",
            "query": query,
            "timezone": limits.timezone,
            "limits": limits,
        }

    async def _picker(self, request: web.Request) -> web.Response:
        try:
            (rows,) = await self.portal.warehouse.rows(reports.tenants())
            tenants, problem = [row["tenant_id"] for row in rows], ""
        except FairUseError as exc:
            tenants, problem = [], str(exc)
        return self.portal.render(
            "picker.html",
            base=f"/p/{request.match_info['token']}",
            tenants=tenants,
            problem=problem,
            page="picker",
            admin=True,
            tenant=None,
        )

    async def home(self, request: web.Request) -> web.Response:
        """``/p/{token}/``: the Standing page (or the tenant picker of an admin link)."""
        return await self.standing(request)

    async def standing(self, request: web.Request) -> web.Response:
        """Standing: each metric of this period against its limit, throttles and notices."""
        tenant = self._tenant(request)
        if tenant is None:
            return await self._picker(request)
        context = self._page(request, tenant, "standing")
        worker = self.portal.worker
        try:
            usage, decisions, violations = await asyncio.gather(
                worker.usage(tenant), worker.decisions(tenant), worker.violations(tenant)
            )
        except WorkerUnavailable as exc:
            log.warning("standing of %s: %s", tenant, exc)
            return self.portal.render("standing.html", status=503, problem=str(exc), **context)
        standing = None
        at_ms = int(self.portal.clock() * 1000)
        if usage is not None:
            _, limits = self.portal.policy.limits_at(tenant, usage["at"])
            standing = pages.standing(usage, decisions, violations, limits)
            context["timezone"] = usage["timezone"]
            at_ms = usage["at"]
        prior = self.portal.sender.prior_notices(
            tenant, [], usage or {"notices": []}, at_ms, context["timezone"]
        )
        pending = [n for n in prior if n["state"] == "pending"]
        return self.portal.render("standing.html", standing=standing, pending=pending, **context)

    async def history(self, request: web.Request) -> web.Response:
        """History: daily usage per metric over the month with the limit pace, top users, and
        the month's closed statements."""
        tenant = self._tenant(request)
        if tenant is None:
            return await self._picker(request)
        context = self._page(request, tenant, "history")
        try:
            usage = await self.portal.worker.usage(tenant)
        except WorkerUnavailable as exc:
            log.warning("history of %s: %s", tenant, exc)
            usage = None
        timezone = usage["timezone"] if usage else context["timezone"]
        month = request.query.get("month") or (
            usage["month"] if usage else datetime.now(ZoneInfo(timezone)).strftime("%Y-%m")
        )
        if not _MONTH_RE.fullmatch(month):
            raise web.HTTPBadRequest(text="month must be YYYY-MM")
        try:
            daily, users, lines = await self.portal.warehouse.rows(
                reports.usage_daily(tenant, month, timezone),
                reports.top_users(tenant, month),
                reports.statements(month, tenant),  # = reports.statement_lines
            )
        except FairUseError as exc:
            return self.portal.render("history.html", status=503, problem=str(exc), **context)
        return self.portal.render(
            "history.html",
            month=month,
            metrics=pages.history(month, daily, usage, lines),
            users=pages.top_users(users),
            statements=pages.statements(lines),
            **{**context, "timezone": timezone},
        )

    async def notices(self, request: web.Request) -> web.Response:
        """Notices: advance notices and actions received with their delivery; prior notices."""
        tenant = self._tenant(request)
        if tenant is None:
            return await self._picker(request)
        context = self._page(request, tenant, "notices")
        timezone = context["timezone"]
        usage_read = asyncio.ensure_future(self._usage_or_none(tenant))
        try:
            steps, given = await self.portal.warehouse.rows(
                reports.enforcement(tenant), reports.usage_notices(tenant)
            )
            months = sorted({str(step["ts"])[:7] for step in steps})
            deliveries = await self.portal.warehouse.rows(
                *(reports.notices(tenant, month) for month in months)
            )
        except FairUseError as exc:
            usage_read.cancel()
            return self.portal.render("notices.html", status=503, problem=str(exc), **context)
        usage, worker_problem = await usage_read
        at_ms = (usage or {}).get("at") or int(self.portal.clock() * 1000)
        return self.portal.render(
            "notices.html",
            steps=pages.notices(steps, [row for rows in deliveries for row in rows], timezone),
            prior=self.portal.sender.prior_notices(tenant, given, usage, at_ms, timezone),
            sent=request.query.get("sent", ""),
            worker_problem=worker_problem,
            **context,
        )

    async def _usage_or_none(self, tenant: str) -> tuple[dict[str, Any] | None, str]:
        """The worker's usage view of ``tenant`` (no notices for a tenant it has never seen),
        or None and why it is unavailable."""
        try:
            usage = await self.portal.worker.usage(tenant)
        except WorkerUnavailable as exc:
            log.warning("notices of %s: %s", tenant, exc)
            return None, str(exc)
        return usage or {"notices": []}, ""

    def _form(
        self,
        request: web.Request,
        tenant: str,
        values: dict[str, Any],
        errors: dict[str, str],
        status: int = 200,
    ) -> web.Response:
        context = self._page(request, tenant, "notice")
        return self.portal.render(
            "notice_form.html",
            status=status,
            values=values,
            errors=errors,
            choices=[(m, pages.LABELS[m].replace(" today", "")) for m in NOTICE_METRICS],
            **context,
        )

    async def notice_form(self, request: web.Request) -> web.Response:
        """The prior-notice form, with a fresh submission id."""
        tenant = self._tenant(request)
        if tenant is None:
            return await self._picker(request)
        values = {"submission": secrets.token_urlsafe(18), "metrics": []}
        return self._form(request, tenant, values, {})

    async def notice_submit(self, request: web.Request) -> web.Response:
        """Validate the form; send one ``usage_notice`` per submission id; show Notices."""
        tenant = self._tenant(request)
        if tenant is None:
            raise web.HTTPBadRequest(text="choose a tenant first")
        data = await request.post()
        form: dict[str, Any] = {key: data.get(key, "") for key in ("starts", "ends", "reason")}
        form["submission"] = data.get("submission", "")
        form["metrics"] = data.getall("metrics", [])
        _, limits = self.portal.policy.limits_at(tenant, int(self.portal.clock() * 1000))
        notice, errors = validate(tenant, form, limits, int(self.portal.clock() * 1000))
        if notice is None:
            return self._form(request, tenant, form, errors, status=422)
        try:
            await self.portal.sender.submit(notice)
        except FairUseError as exc:
            log.warning("prior notice of %s not sent: %s", tenant, exc)
            errors = {"form": "The notice could not be sent just now; please submit it again."}
            return self._form(request, tenant, form, errors, status=503)
        context = self._page(request, tenant, "notices")
        separator = "&" if context["query"] else "?"
        location = (
            f"{context['base']}/notices{context['query']}{separator}sent={notice.event.event_id}"
        )
        raise web.HTTPSeeOther(location, headers=SECURITY_HEADERS)
