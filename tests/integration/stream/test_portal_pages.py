"""``fairuse portal`` over a simulated month (real broker, worker, sink into chDB): every page's
numbers equal the worker's API and the warehouse; access; the prior-notice form."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from html import unescape

import jsonschema
import orjson
from portal_support import PortalMonth, fetch
from stream_harness import consume_all, wait_for

from fairuse.portal.links import ADMIN
from fairuse.portal.pages import amount
from fairuse.stream.views import openapi_document
from fairuse.warehouse import reports
from fairuse.warehouse.store import Reader
from html_support import tagged


def test_standing_shows_the_worker_api_numbers(month_portal: PortalMonth) -> None:
    for tenant in month_portal.tenants:

        def same(tenant: str = tenant) -> bool:
            status, page = fetch(month_portal.link(tenant) + "/standing")
            usage = month_portal.api(f"/v1/tenants/{tenant}/usage")
            assert status == 200, page
            shown = {s["data-metric"]: s for s in tagged(page, "data-observed")}
            assert set(shown) == set(usage["metrics"])
            for metric, view in usage["metrics"].items():
                if float(shown[metric]["data-observed"]) != float(view["observed"]):
                    return False  # the worker moved on between the two reads: read again
                assert float(shown[metric]["data-limit"]) == float(view["limit"])
                assert amount(view["observed"], view["unit"]) in unescape(page)
                assert amount(view["limit"], view["unit"]) in unescape(page)
            assert f"{usage['seats']} named active user" in page
            for metric in usage["metrics"]:  # a pending notice or active throttle, in words
                decision = month_portal.api(f"/v1/tenants/{tenant}/decision?metric={metric}")
                if decision["reason"]:
                    assert decision["reason"]["text"] in unescape(page)
            return True

        wait_for(same, 60, f"the standing page of {tenant} to match the API")


def test_history_shows_the_warehouse_numbers_statements_and_the_live_limit(
    month_portal: PortalMonth,
) -> None:
    for tenant in month_portal.tenants:
        usage = month_portal.api(f"/v1/tenants/{tenant}/usage")
        for month in ("2026-11", usage["month"]):
            status, page = fetch(month_portal.link(tenant) + f"/history?month={month}")
            assert status == 200, page
            rows = month_portal.query(*reports.usage_daily(tenant, month, usage["timezone"]))
            sections = re.split(r'<section class="metric" id="history-', page)[1:]
            assert len(sections) == 3
            for section in sections:
                metric = section.split('"', 1)[0]
                expected = {r["day"]: float(r["amount"]) for r in rows if r["metric"] == metric}
                days = {d["data-day"]: float(d["data-amount"]) for d in tagged(section, "data-day")}
                assert {d: v for d, v in days.items() if v} == expected, (tenant, month, metric)
                assert all(day.startswith(month) for day in days)
                limit = float(re.search(r'data-limit="([^"]+)"', section)[1])
                if month == usage["month"]:
                    assert limit == float(usage["metrics"][metric]["limit"])
                assert ('class="pace-line"' in section) == (metric != "api_calls")
            with Reader(month_portal.dsn) as reader:
                lines = reports.statement_lines(reader, month, tenant)
            shown = [(s["data-statement-id"], float(s["data-observed"]), float(s["data-excess"]))
                     for s in tagged(page, "data-statement-id")]  # fmt: skip
            assert shown == [(s["statement_id"], float(s["observed"]), float(s["excess"]))
                             for s in lines]  # fmt: skip
            users = month_portal.query(*reports.top_users(tenant, month))
            shown = [(u["data-user"], float(u["data-hours"])) for u in tagged(page, "data-hours")]
            assert shown == [(u["user_id"], float(u["hours"])) for u in users]


def test_notices_list_the_warehouse_enforcement_with_delivery(
    month_portal: PortalMonth,
) -> None:
    seen_steps = 0
    for tenant in month_portal.tenants:
        status, page = fetch(month_portal.link(tenant) + "/notices")
        assert status == 200, page
        steps = month_portal.query(*reports.enforcement(tenant))
        shown = [row["data-enforcement-id"] for row in tagged(page, "data-enforcement-id")]
        assert shown == [step["enforcement_id"] for step in steps]
        # no notifier ran: every step says that no delivery is recorded
        states = [d["data-state"] for d in tagged(page, "data-state") if d["tag"] != "tr"]
        assert states == ["none"] * len(steps)
        seen_steps += len(steps)
    assert seen_steps, "the simulated month should hold advance notices or actions"


def test_access_by_signed_link_only(month_portal: PortalMonth) -> None:
    first, second = month_portal.tenants[:2]
    status, page = fetch(month_portal.link(first) + f"/standing?tenant={second}")
    assert status == 403 and second not in page and first not in page
    status, page = fetch(month_portal.link(first, ttl_s=-1) + "/standing")
    assert status == 403 and first not in page
    status, page = fetch(month_portal.link(ADMIN) + "/")
    assert status == 200
    assert [o["value"] for o in tagged(page, "value") if o["tag"] == "option"] == (
        month_portal.tenants
    )
    status, page = fetch(month_portal.link(ADMIN) + f"/history?tenant={second}")
    assert status == 200 and f"Fair use: {second}" in page


def _form(month_portal: PortalMonth, tenant: str) -> dict[str, str | list[str]]:
    status, page = fetch(month_portal.link(tenant) + "/notice")
    assert status == 200, page
    (hidden,) = [t for t in tagged(page, "name") if t["name"] == "submission"]
    return {"submission": str(hidden["value"]), "metrics": ["api_calls", "audio_hours"],
            "starts": "2099-03-01T08:00", "ends": "2099-03-04T18:00",
            "reason": "Quarter-end campaign"}  # fmt: skip


def test_the_notice_form_refuses_bad_input_and_sends_one_event_per_submission(
    month_portal: PortalMonth,
) -> None:
    tenant = month_portal.tenants[0]
    url = month_portal.link(tenant) + "/notice"
    good = _form(month_portal, tenant)
    for bad, message in (
        ({"ends": "2099-02-28T08:00"}, "The end must be after the start."),
        ({"ends": "2099-03-30T08:00"}, "A notice may cover at most 14 days"),
        ({"metrics": []}, "Choose at least one metric."),
        ({"reason": ""}, "Say briefly why traffic will be high."),
        ({"starts": "yesterday"}, "Enter the start as a date and time"),
    ):
        status, page = fetch(url, {**good, **bad})
        assert status == 422 and message in unescape(page), bad

    with ThreadPoolExecutor(2) as pool:  # a double click: the same form sent twice at once
        answers = list(pool.map(lambda _: fetch(url, good), range(2)))
    assert [status for status, _ in answers] == [200, 200]
    page = answers[0][1]
    (row,) = [r for r in tagged(page, "data-event-id") if r["tag"] == "tr"]
    event_id = row["data-event-id"]
    assert "Quarter-end campaign" in page and "your prior notice was sent" in page

    events = consume_all(month_portal.kafka, ["events"])["events"]
    sent = [e for e in events if e["event_id"] == event_id]
    assert len(sent) == 1
    assert sent[0]["type"] == "usage_notice" and sent[0]["tenant_id"] == tenant
    assert sent[0]["metrics"] == ["audio_hours", "api_calls"]

    # pending until the worker's ledger holds it, then in force (as the worker's API says)
    def state() -> str | None:
        _, notices = fetch(month_portal.link(tenant) + "/notices")
        rows = [r for r in tagged(notices, "data-event-id") if r["data-event-id"] == event_id]
        return rows[0]["data-state"] if rows and rows[0]["data-state"] != "pending" else None

    assert wait_for(state, 120, "the worker to reflect the notice") == "in-force"
    usage = month_portal.api(f"/v1/tenants/{tenant}/usage")
    (held,) = [n for n in usage["notices"] if n["event_id"] == event_id]
    assert held["accepted"] and (held["starts"], held["ends"]) == (
        sent[0]["starts"],
        sent[0]["ends"],
    )
    document = orjson.loads(openapi_document())
    schema = {"$ref": "#/components/schemas/Usage", "components": document["components"]}
    jsonschema.Draft202012Validator(schema).validate(usage)  # a non-empty ``notices`` too
    # another submission of the same form still sends nothing new
    fetch(url, good)
    events = consume_all(month_portal.kafka, ["events"])["events"]
    assert [e["event_id"] for e in events].count(event_id) == 1
