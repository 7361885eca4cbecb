"""Prior notices in the portal: pending until the worker's usage view holds them, then in force
(pure states, and the server with a stand-in worker API, warehouse and producer)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fairuse.policy import DEFAULT_POLICY
from fairuse.portal.app import Portal, build_app
from fairuse.portal.links import sign
from fairuse.portal.pages import prior_notices
from fairuse.settings import load_settings
from fairuse.warehouse import reports
from html_support import tagged

SECRET = "unit-secret"
NOW_MS = 1_800_000_000_000
DAY = 86_400_000
SENT = {"type": "usage_notice", "event_id": "portal-1", "tenant_id": "acme", "ts": NOW_MS,
        "notice_id": "pn-1", "starts": NOW_MS + 2 * DAY, "ends": NOW_MS + 3 * DAY,
        "metrics": ["api_calls"], "reason": "Launch"}  # fmt: skip


def held(event_id: str | None = "portal-1", **fields: Any) -> dict[str, Any]:
    """A notice as the worker's usage view lists it."""
    return {"notice_id": "pn-1", "event_id": event_id, "given": NOW_MS,
            "starts": SENT["starts"], "ends": SENT["ends"], "metrics": ["api_calls"],
            "accepted": True, "why": "", **fields}  # fmt: skip


def states(*args: Any, **kwargs: Any) -> list[tuple[str, str]]:
    return [(n["event_id"], n["state"]) for n in prior_notices(*args, **kwargs)]


def test_a_sent_notice_is_pending_until_the_ledger_holds_it() -> None:
    assert states([], [SENT], [], NOW_MS, "UTC") == [("portal-1", "pending")]
    assert states([], [SENT], None, NOW_MS, "UTC") == [("portal-1", "pending")]
    (shown,) = prior_notices([], [SENT], [held()], NOW_MS, "UTC")
    assert shown["state"] == "in-force" and shown["state_text"] == "in force"
    assert shown["reason"] == "Launch" and shown["metrics"] == "API calls"
    # stored by the sink but not yet in the ledger: still pending
    stored = [{"event_id": "portal-1", "raw": orjson.dumps(SENT).decode()}]
    assert states(stored, [], [], NOW_MS, "UTC") == [("portal-1", "pending")]
    # a worker whose view lists no notices (older): the warehouse says it is recorded
    assert states(stored, [], None, NOW_MS, "UTC", True) == [("portal-1", "recorded")]


def test_the_ledger_s_view_decides_the_state() -> None:
    refused = held(accepted=False, why="notice 'pn-1' arrived 3 h before its start")
    (shown,) = prior_notices([], [SENT], [refused], NOW_MS, "UTC")
    assert shown["state"] == "excuses-nothing" and "arrived 3 h before" in shown["state_text"]
    # kept before the ledger remembered event ids: matched by period and metrics
    assert states([], [SENT], [held(None, given=None)], NOW_MS, "UTC") == [("portal-1", "in-force")]
    assert states([], [SENT], [held(None, ends=SENT["ends"] + 1)], NOW_MS, "UTC") == [
        ("pn-1", "in-force"),  # the ledger's own notice, given at an unknown time
        ("portal-1", "replaced"),
    ]
    assert states([], [SENT], [held("other-event")], NOW_MS, "UTC") == [
        ("other-event", "in-force"),
        ("portal-1", "replaced"),
    ]
    # over before the tenant clock and forgotten by the ledger: history
    assert states([], [SENT], [], SENT["ends"], "UTC") == [("portal-1", "recorded")]


class StandIns:
    """The worker's usage endpoint and the warehouse, under the test's control."""

    def __init__(self) -> None:
        self.ledger: list[dict[str, Any]] = []
        self.worker_up = True

    def worker(self) -> web.Application:
        async def usage(request: web.Request) -> web.Response:
            if not self.worker_up:
                return web.json_response({"error": "rebalancing"}, status=503)
            return web.json_response({"tenant_id": "acme", "at": NOW_MS, "day": "", "month": "",
                                      "timezone": "UTC", "policy_revision": "r", "seats": 1,
                                      "open_sessions": [], "metrics": {},
                                      "notices": self.ledger})  # fmt: skip

        app = web.Application()
        app.add_routes([web.get("/v1/tenants/acme/usage", usage)])
        return app

    async def rows(self, *queries: reports.Query) -> list[list[dict[str, Any]]]:
        return [[] for _ in queries]  # the sink has stored nothing yet

    def close(self) -> None:
        pass


class Producer:
    """The recorder client's sending side: keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_raw(self, key: bytes, value: bytes) -> None:
        self.sent.append(orjson.loads(value))

    async def flush(self) -> None:
        pass

    async def close(self) -> None:
        pass


def test_the_notices_page_shows_pending_until_the_worker_reflects_it(tmp_path: Path) -> None:
    fakes, producer = StandIns(), Producer()

    async def main() -> None:
        async with TestServer(fakes.worker()) as worker:
            settings = load_settings(
                {"FAIRUSE_DATA_DIR": str(tmp_path), "FAIRUSE_PORTAL_SECRET": SECRET}
            )
            portal_settings = replace(settings.portal, worker_url=str(worker.make_url("")))
            portal = Portal(replace(settings, portal=portal_settings), DEFAULT_POLICY,
                            clock=lambda: NOW_MS / 1000)  # fmt: skip
            portal.warehouse.close()
            portal.warehouse = fakes  # type: ignore[assignment]
            portal.sender._client = producer  # type: ignore[assignment]
            async with TestClient(TestServer(build_app(portal))) as client:
                await check(client)

    async def page(client: TestClient, path: str) -> str:
        response = await client.get(path)
        assert response.status == 200
        return await response.text()

    async def check(client: TestClient) -> None:
        base = f"/p/{sign(SECRET, 'acme', NOW_MS // 1000 + 3600)}"
        form = await page(client, base + "/notice")
        (submission,) = [r["value"] for r in tagged(form, "name") if r["name"] == "submission"]
        response = await client.post(base + "/notice", data={
            "submission": submission, "starts": "2099-03-01T08:00", "ends": "2099-03-02T08:00",
            "metrics": "api_calls", "reason": "Launch"})  # fmt: skip
        assert response.status == 200 and "/notices?sent=" in str(response.url)
        (event,) = producer.sent
        (row,) = tagged(await response.text(), "data-state")
        assert (row["data-event-id"], row["data-state"]) == (event["event_id"], "pending")
        standing = await page(client, base + "/standing")
        assert f'data-event-id="{event["event_id"]}"' in standing

        fakes.worker_up = False  # the worker does not answer: still pending, and said so
        text = await page(client, base + "/notices")
        assert [r["data-state"] for r in tagged(text, "data-state")] == ["pending"]
        assert 'id="worker-problem"' in text

        fakes.worker_up = True  # the worker's ledger holds it now
        fakes.ledger = [held(event["event_id"], notice_id=event["notice_id"],
                             starts=event["starts"], ends=event["ends"])]  # fmt: skip
        text = await page(client, base + "/notices")
        (row,) = tagged(text, "data-state")
        assert row["data-state"] == "in-force" and "Launch" in text
        assert 'id="worker-problem"' not in text
        standing = await page(client, base + "/standing")
        assert f'data-event-id="{event["event_id"]}"' not in standing
        assert "Launch" in await page(client, base + "/notices")  # kept until the sink stores it

    asyncio.run(main())
