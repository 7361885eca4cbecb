"""Server-side access to the portal: signed links, 403 that reveals nothing, admin picker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fairuse.policy import DEFAULT_POLICY
from fairuse.portal.app import DENIED, Portal, build_app
from fairuse.portal.links import ADMIN, sign
from fairuse.settings import load_settings

SECRET = "unit-secret"
NOW = 1_800_000_000.0


def run(tmp_path: Path, check: Callable[[TestClient], Awaitable[Any]]) -> Any:
    settings = load_settings({"FAIRUSE_DATA_DIR": str(tmp_path), "FAIRUSE_PORTAL_SECRET": SECRET})
    # nothing listens on port 9: the worker is unreachable, pages that need it say so
    settings = replace(settings, portal=replace(settings.portal, worker_url="http://127.0.0.1:9"))
    portal = Portal(settings, DEFAULT_POLICY, clock=lambda: NOW)

    async def main() -> Any:
        async with TestClient(TestServer(build_app(portal))) as client:
            return await check(client)

    return asyncio.run(main())


def link(tenant: str, expires: float = NOW + 3600, secret: str = SECRET) -> str:
    return f"/p/{sign(secret, tenant, int(expires))}"


async def fetch(client: TestClient, path: str) -> tuple[int, str]:
    response = await client.get(path)
    return response.status, await response.text()


DENIED_CASES = {
    "expired": (link("acme", NOW - 1), "/notice"),
    "expired at this second": (link("acme", NOW), "/notice"),
    "other secret": (link("acme", secret="forged"), "/notice"),
    "tampered": (link("acme")[:-2] + "AA", "/notice"),
    "garbage": ("/p/not-a-token", "/standing"),
    "other tenant": (link("acme"), "/notice?tenant=globex"),
    "other tenant history": (link("acme"), "/history?tenant=globex"),
}


@pytest.mark.parametrize("case", sorted(DENIED_CASES))
def test_a_bad_link_gets_403_naming_nothing(tmp_path: Path, case: str) -> None:
    prefix, page = DENIED_CASES[case]
    status, body = run(tmp_path, lambda client: fetch(client, prefix + page))
    assert status == 403
    assert DENIED in body
    assert "acme" not in body and "globex" not in body


def test_a_tenant_link_shows_its_tenant(tmp_path: Path) -> None:
    async def check(client: TestClient) -> None:
        status, body = await fetch(client, link("acme") + "/notice")
        assert status == 200 and "Fair use: acme" in body
        status, body = await fetch(client, link("acme") + "/notice?tenant=acme")
        assert status == 200
        response = await client.get(link("acme") + "/notice")
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "no-store" in response.headers["Cache-Control"]
        # a page that needs the worker says it is unavailable, not 403
        status, body = await fetch(client, link("acme") + "/standing")
        assert status == 503 and "unavailable" in body

    run(tmp_path, check)


def test_an_admin_link_picks_any_tenant(tmp_path: Path) -> None:
    async def check(client: TestClient) -> None:
        status, body = await fetch(client, link(ADMIN) + "/")
        assert status == 200 and "Choose a tenant" in body
        for tenant in ("acme", "globex"):
            status, body = await fetch(client, link(ADMIN) + f"/notice?tenant={tenant}")
            assert status == 200 and f"Fair use: {tenant}" in body
        status, _ = await fetch(client, link(ADMIN) + "/notice?tenant=../etc")
        assert status == 400

    run(tmp_path, check)
