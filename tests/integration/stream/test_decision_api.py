"""The decision API for gateways against real workers on the real broker: a tenant through
notice, throttle and lift, asked of the partition owner and of the other worker."""

from __future__ import annotations

import asyncio
import dataclasses
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import orjson
from stream_harness import (
    caught_up,
    http_get,
    joining_a_stalled_group,
    partition_of,
    produce,
    stallable_env,
    wait_for,
)

from fairuse.events import TS_MIN_MS
from fairuse.gateway import FairUseASGI, FairUseWSGI, Gate, GatewayConfig
from fairuse.policy import DEFAULT_POLICY, Policy, Revision, policy_to_toml
from fairuse.settings import KafkaSettings
from kafka_support import free_port, scaled_s

ADMIN = "admin-token"
TOKENS = {
    "FAIRUSE_API_TOKEN": ADMIN,
    "FAIRUSE_API_TENANT_TOKENS": "acme:acme-token,globex:globex-token",
    "FAIRUSE_DECISION_CACHE_MAX_AGE_S": "7",
}
DAY_MS = 86_400_000
JAN_1_NOON = 1_767_268_800_000  # 2026-01-01T12:00:00Z
STRICT = Revision(
    "strict-2026",
    TS_MIN_MS,
    dataclasses.replace(
        DEFAULT_POLICY.revisions[0].limits,
        api_calls_per_day=10,
        notice_period_days=14,
        throttle_days=3,
        enforcement_action="throttle",
    ),
    {},
)


def api_call(day: int, count: int, tenant: str = "acme") -> bytes:
    """``count`` API calls at noon UTC of day ``day`` of 2026 (1-based)."""
    return orjson.dumps(
        {
            "type": "api_call",
            "event_id": f"{tenant}-{day}-{count}",
            "tenant_id": tenant,
            "ts": JAN_1_NOON + (day - 1) * DAY_MS,
            "count": count,
        }
    )


def get(port: int, path: str, token: str | None = ADMIN) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body of ``GET path`` (status 0 while nothing answers)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=scaled_s(20)) as response:
            status, headers, body = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, headers, body = exc.code, dict(exc.headers), exc.read()
    except OSError:
        return 0, {}, None
    return status, headers, orjson.loads(body)


def decision_at(ports: list[int], as_of_ms: int) -> list[tuple[dict[str, str], Any]]:
    """The decision for acme's api_calls from every worker, once each shows ``as_of_ms``."""
    path = "/v1/tenants/acme/decision?metric=api_calls"
    answers = []
    for port in ports:

        def current(port: int = port) -> Any:
            status, headers, body = get(port, path)
            return status == 200 and body["as_of_ms"] == as_of_ms and (headers, body)

        answers.append(wait_for(current, 120, f"the decision as of {as_of_ms} on {port}"))
    return answers


def test_notice_throttle_and_lift_with_retry_after_from_owner_and_forwarder(
    kafka_settings: KafkaSettings, workers, tmp_path: Path
) -> None:
    policy_file = tmp_path / "strict.toml"
    policy_file.write_text(policy_to_toml(Policy([STRICT])))
    first = workers(**TOKENS).start("--policy", str(policy_file))
    second = workers(**TOKENS).start("--policy", str(policy_file))
    ports = [first.web_port, second.web_port]

    produce(kafka_settings, [api_call(1, 11), api_call(2, 11)])  # two strikes: a notice
    for headers, body in decision_at(ports, JAN_1_NOON + DAY_MS):
        assert (body["allowed"], body["action"], body["until"]) == (True, "none", None)
        assert body["reason"]["kind"] == "notice"
        assert body["reason"]["effective_at"] == "2026-01-16T12:00:00+00:00"
        assert len(body["reason"]["violation_ids"]) == 2
        assert (body["observed"], body["limit"], body["remaining"]) == (11.0, 10.0, 0.0)
        assert body["resets_at"] == "2026-01-03T00:00:00+00:00"
        assert body["cache_max_age_s"] == 7 and headers["Cache-Control"] == "max-age=7"
        assert headers["RateLimit-Policy"] == '"api_calls";q=10;w=86400'
        assert headers["RateLimit"] == '"api_calls";r=0;t=43200'
        assert "Retry-After" not in headers

    answers = decision_at(ports, JAN_1_NOON + DAY_MS)
    assert sorted("Via" in headers for headers, _ in answers) == [False, True]  # one forwarded
    produce(kafka_settings, [api_call(16, 11)])  # a strike at effective_at: throttled 3 days
    until = "2026-01-19T12:00:00+00:00"
    for headers, body in decision_at(ports, JAN_1_NOON + 15 * DAY_MS):
        assert (body["allowed"], body["action"], body["until"]) == (False, "throttle", until)
        assert body["until_ms"] == JAN_1_NOON + 18 * DAY_MS
        assert body["reason"]["kind"] == "action" and body["reason"]["until"] == until
        assert body["reason"]["text"].startswith("API calls over the limit on 3 days")
        assert headers["Retry-After"] == str(3 * 86_400)
        assert headers["RateLimit"] == f'"api_calls";r=0;t={3 * 86_400}'

    produce(kafka_settings, [api_call(17, 1)])  # a day later, still throttled: 2 days to go
    for headers, body in decision_at(ports, JAN_1_NOON + 16 * DAY_MS):
        assert body["allowed"] is False and headers["Retry-After"] == str(2 * 86_400)

    produce(kafka_settings, [api_call(19, 1)])  # the tenant clock reaches until: lifted
    for headers, body in decision_at(ports, JAN_1_NOON + 18 * DAY_MS):
        assert (body["allowed"], body["action"], body["reason"], body["until"]) == (
            True,
            "none",
            None,
            None,
        )
        assert (body["observed"], body["remaining"]) == (1.0, 9.0)
        assert headers["RateLimit"] == '"api_calls";r=9;t=43200' and "Retry-After" not in headers

    wait_for(lambda: caught_up(kafka_settings, first.app_id), 120, "both workers done")
    port = first.web_port
    assert get(port, "/v1/tenants/acme/decision?metric=api_calls", "acme-token")[0] == 200
    assert get(port, "/v1/tenants/acme/decision?metric=api_calls", "globex-token")[0] == 403
    assert get(port, "/v1/tenants/acme/decision?metric=api_calls", None)[0] == 401
    assert get(port, "/v1/tenants/nobody/decision?metric=api_calls")[0] == 404
    assert get(port, "/v1/tenants/acme/decision?metric=bogus")[0] == 400
    assert get(port, "/v1/tenants/acme/decision")[0] == 400
    status, headers, body = get(port, "/v1/tenants/acme/decision?metric=audio_hours")
    assert (status, body["allowed"], body["unit"]) == (200, True, "hours")
    assert body["period"] == "2026-01" and body["resets_at"] == "2026-02-01T00:00:00+00:00"


def test_v1_paths_and_the_deprecated_aliases_answer_alike(
    kafka_settings: KafkaSettings, workers
) -> None:
    worker = workers(**TOKENS).start()
    produce(kafka_settings, [api_call(1, 3, "globex")])
    port = worker.web_port
    wait_for(
        lambda: http_get(port, "/v1/tenants/globex/usage", ADMIN)[0] == 200, 120, "globex usage"
    )
    for path in ("/tenants/globex/usage", "/tenants/globex/violations", "/policy"):
        status, headers, old = get(port, path)
        assert get(port, "/v1" + path)[2] == old and status == 200
        assert headers["Deprecation"] == "true"
        assert headers["Link"] == f'</v1{path}>; rel="successor-version"'
    assert get(port, "/tenants/globex/usage", "acme-token")[0] == 403


class FakeClock:
    """Seconds that pass only when the test says so (the gateway cache's clock)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def hello_asgi(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def hello_wsgi(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def through_asgi(app: FairUseASGI, tenant: str) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request of ``tenant`` through an ASGI app: status, headers (lower case), body."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(b"x-tenant-id", tenant.encode())],
    }
    asyncio.run(app(scope, receive, send))
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


def through_wsgi(app: FairUseWSGI, tenant: str) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request of ``tenant`` through a WSGI app: status, headers (lower case), body."""
    environ: dict[str, Any] = {"HTTP_X_TENANT_ID": tenant}
    setup_testing_defaults(environ)
    started: list[Any] = []
    body = b"".join(
        app(environ, lambda status, headers, exc_info=None: started.append((status, headers)))
    )
    status, headers = started[0]
    return int(status.split()[0]), {k.lower(): v for k, v in headers}, body


def test_gateway_middleware_against_a_real_worker(
    kafka_settings: KafkaSettings, workers, tmp_path: Path
) -> None:
    policy_file = tmp_path / "strict.toml"
    policy_file.write_text(policy_to_toml(Policy([STRICT])))
    worker = workers(**TOKENS).start("--policy", str(policy_file))
    produce(kafka_settings, [api_call(1, 11), api_call(2, 11), api_call(16, 11)])
    decision_at([worker.web_port], JAN_1_NOON + 15 * DAY_MS)  # throttled until day 19, noon
    clock = FakeClock()
    gate = Gate(GatewayConfig(f"http://127.0.0.1:{worker.web_port}", ADMIN), clock=clock)
    asgi, wsgi = FairUseASGI(hello_asgi, gate), FairUseWSGI(hello_wsgi, gate)

    for through in (through_asgi, through_wsgi):
        status, headers, body = through(asgi if through is through_asgi else wsgi, "acme")
        assert status == 429, body
        assert headers["retry-after"] == str(3 * 86_400)
        assert headers["ratelimit"] == f'"api_calls";r=0;t={3 * 86_400}'
        assert headers["ratelimit-policy"] == '"api_calls";q=10;w=86400'
        assert orjson.loads(body)["decision"]["reason"]["kind"] == "action"
        status, headers, body = through(asgi if through is through_asgi else wsgi, "nobody")
        assert (status, body) == (200, b"hello")  # never seen by the worker: passes
    assert gate.fetches == 3  # acme once (cached for 7 s), nobody twice (a 404 is not cached)

    produce(kafka_settings, [api_call(19, 1)])  # the tenant clock reaches until: lifted
    decision_at([worker.web_port], JAN_1_NOON + 18 * DAY_MS)
    assert through_wsgi(wsgi, "acme")[0] == 429  # still the cached decision
    clock.now += 7  # max-age passed
    for through, app in ((through_asgi, asgi), (through_wsgi, wsgi)):
        status, headers, body = through(app, "acme")  # type: ignore[operator]
        assert (status, body) == (200, b"hello")
        assert headers["ratelimit"] == '"api_calls";r=9;t=43200' and "retry-after" not in headers
    assert gate.fetches == 4

    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for fail_open, expected in ((True, 200), (False, 503)):
        down = Gate(GatewayConfig(nowhere, ADMIN, fail_open=fail_open, timeout_s=5))
        assert through_asgi(FairUseASGI(hello_asgi, down), "acme")[0] == expected
        assert through_wsgi(FairUseWSGI(hello_wsgi, down), "acme")[0] == expected


def test_gateway_fails_open_or_closed_while_the_worker_knows_no_owner(
    kafka_settings: KafkaSettings, workers
) -> None:
    path = "/v1/tenants/acme/decision?metric=api_calls"
    stalled = workers(**TOKENS, **stallable_env()).start()
    produce(kafka_settings, [api_call(1, 3)])
    wait_for(lambda: get(stalled.web_port, path)[0] == 200, 120, "acme's decision")
    joining = workers(**TOKENS)
    url = f"http://127.0.0.1:{joining.web_port}"
    gates = {opens: Gate(GatewayConfig(url, ADMIN, fail_open=opens)) for opens in (True, False)}

    with joining_a_stalled_group(stalled, joining):
        status, headers, body = get(joining.web_port, path)
        assert (status, headers["Retry-After"]) == (503, "1"), body
        for fail_open, gate in gates.items():
            for status, headers, body in (
                through_asgi(FairUseASGI(hello_asgi, gate), "acme"),
                through_wsgi(FairUseWSGI(hello_wsgi, gate), "acme"),
            ):
                if fail_open:
                    assert (status, body) == (200, b"hello") and "ratelimit" not in headers
                else:
                    assert (status, headers["retry-after"]) == (503, "1")
                    assert orjson.loads(body) == {"error": "fair-use decision unavailable"}
            assert gate.fetches == 2  # a 503 is not cached: each request asks again

    wait_for(lambda: get(joining.web_port, path)[0] == 200, 120, "an owner of acme's partition")
    for gate in gates.values():
        status, headers, body = through_wsgi(FairUseWSGI(hello_wsgi, gate), "acme")
        assert (status, body) == (200, b"hello")
        assert headers["ratelimit"] == '"api_calls";r=2397;t=43200'


def test_a_tenant_of_a_dead_owner_gets_503_from_the_other_worker(
    kafka_settings: KafkaSettings, workers
) -> None:
    partitions = kafka_settings.events_partitions
    tenants: dict[int, str] = {}  # a tenant on every events partition
    for n in range(1000):
        tenants.setdefault(partition_of(f"tenant-{n}", partitions), f"tenant-{n}")
    assert len(tenants) == partitions
    owner = workers(**TOKENS, **stallable_env()).start()  # its partitions stay its for long
    other = workers(**TOKENS).start()
    produce(kafka_settings, [api_call(1, 1, tenant) for tenant in tenants.values()])

    def forwarded_and_local() -> Any:
        found = {
            tenant: get(other.web_port, f"/v1/tenants/{tenant}/decision?metric=api_calls")
            for tenant in tenants.values()
        }
        if any(status != 200 for status, _, _ in found.values()):
            return None
        via = {tenant: "Via" in headers for tenant, (_, headers, _) in found.items()}
        return set(via.values()) == {True, False} and via

    via = wait_for(forwarded_and_local, 120, "the tenants of both workers")
    owner.kill()  # no goodbye: the group waits for its session timeout before moving its partitions
    for tenant, forwarded in via.items():
        status, headers, body = get(
            other.web_port, f"/v1/tenants/{tenant}/decision?metric=api_calls"
        )
        if forwarded:
            assert (status, headers["Retry-After"]) == (503, "1"), body
            assert "does not answer" in body["error"]
        else:
            assert status == 200, body
