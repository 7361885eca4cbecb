"""``fairuse ingest`` against a real broker: content types, per-event answers, token scope,
limits, a broker outage, and the service SIGKILLed in the middle of a month sent over HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from fairuse.events import ApiCall, CallStored, encode_event, parse_event
from fairuse.ingest.app import build_app, openapi_document
from fairuse.ingest.decode import to_cloudevent
from fairuse.ingest.gateway import BrokerGateway
from fairuse.settings import IngestSettings, KafkaSettings
from fairuse.topics import create_topics
from kafka_support import BrokerScripts, free_port_pair
from recorder_support import (
    ledger_output,
    ndjson_lines,
    per_tenant_first_copies,
    record_count,
    stored,
)

TOKEN = "gw-secret"
SETTINGS = IngestSettings(tokens=f"{TOKEN}=acme,globex;admin=*", broker_timeout_ms=5000)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TS = 1_767_225_600_000


def api_call(n: int, tenant: str = "acme") -> ApiCall:
    return ApiCall(event_id=f"{tenant}:{n}", tenant_id=tenant, ts=TS + n, count=n % 5 + 1)


Call = Callable[[ClientSession, str], Awaitable[Any]]


def with_service(kafka: KafkaSettings, settings: IngestSettings, body: Call) -> Any:
    """Run ``body(session, base_url)`` against the app in this process, once it is ready."""

    async def run() -> Any:
        app = build_app(settings, BrokerGateway(kafka, settings.broker_timeout_ms))
        async with TestServer(app) as server, ClientSession() as session:
            base = str(server.make_url("")).rstrip("/")
            await until_ready(session, base)
            return await body(session, base)

    return asyncio.run(run())


async def until_ready(session: ClientSession, base: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        async with session.get(f"{base}/readyz") as response:
            if response.status == 200:
                return
        assert time.monotonic() < deadline, "ingest never became ready"
        await asyncio.sleep(0.2)


async def post(
    session: ClientSession, base: str, body: bytes, content_type: str, token: str = TOKEN
) -> tuple[int, Any, dict[str, str]]:
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {token}"}
    async with session.post(f"{base}/v1/events", data=body, headers=headers) as response:
        return response.status, await response.json(), dict(response.headers)


def test_every_content_type_is_accepted_and_stored(kafka_settings: KafkaSettings) -> None:
    events = [api_call(n) for n in range(10)]
    stored_call = CallStored(event_id="acme:c1", tenant_id="acme", ts=TS, call_id="c-1")
    bodies = [
        (encode_event(events[0]), "application/json"),
        (orjson.dumps([e.to_dict() for e in events[1:4]]), "application/json"),
        (b"\n".join(encode_event(e) for e in events[4:7]) + b"\n", "application/x-ndjson"),
        (orjson.dumps(to_cloudevent(events[7])), "application/cloudevents+json"),
        (
            orjson.dumps([to_cloudevent(e) for e in (*events[8:], stored_call)]),
            "application/cloudevents-batch+json",
        ),
    ]

    async def body(session: ClientSession, base: str) -> list[tuple[int, Any]]:
        return [(s, a) for s, a, _h in [await post(session, base, b, t) for b, t in bodies]]

    answers = with_service(kafka_settings, SETTINGS, body)
    assert [status for status, _ in answers] == [202] * 5
    assert [a["accepted"] for _, a in answers] == [1, 3, 3, 1, 3]
    produced = stored(kafka_settings)
    assert sorted(produced) == sorted((b"acme", encode_event(e)) for e in (*events, stored_call))


def test_a_mixed_batch_is_answered_per_event_and_only_the_valid_ones_are_produced(
    kafka_settings: KafkaSettings,
) -> None:
    good = [api_call(1), api_call(2, "globex")]
    lines = [
        encode_event(good[0]),
        b'{"type": "api_call", "event_id": "x", "tenant_id": "acme", "ts": "yesterday"}',
        b"{not json",
        encode_event(api_call(3, "initech")),  # valid, but not this token's tenant
        encode_event(good[1]),
    ]

    async def body(session: ClientSession, base: str) -> tuple[int, Any, dict[str, str]]:
        return await post(session, base, b"\n".join(lines), "application/x-ndjson")

    status, answer, _headers = with_service(kafka_settings, SETTINGS, body)
    assert status == 202
    assert (answer["accepted"], answer["rejected"]) == (2, 3)
    results = answer["results"]
    assert [r["result"] for r in results] == [
        "accepted", "rejected", "rejected", "rejected", "accepted",
    ]  # fmt: skip
    expected = parse_event(lines[1])
    assert (results[1]["status"], results[1]["reason"], results[1]["detail"]) == (
        400, expected.reason, expected.detail,  # type: ignore[union-attr]
    )  # fmt: skip
    assert (results[2]["reason"], results[2]["status"]) == ("bad_json", 400)
    assert (results[3]["reason"], results[3]["status"]) == ("forbidden_tenant", 403)
    expected_records = sorted((e.tenant_id.encode(), encode_event(e)) for e in good)
    assert sorted(stored(kafka_settings)) == expected_records


def test_token_scope_unknown_tokens_and_an_all_forbidden_request(
    kafka_settings: KafkaSettings,
) -> None:
    other = encode_event(api_call(1, "initech"))

    async def body(session: ClientSession, base: str) -> list[int]:
        forbidden = await post(session, base, other, "application/json")
        unknown = await post(session, base, other, "application/json", token="nope")
        admin = await post(session, base, other, "application/json", token="admin")
        assert forbidden[1]["results"][0]["reason"] == "forbidden_tenant"
        assert "Bearer" in unknown[2]["WWW-Authenticate"]
        return [forbidden[0], unknown[0], admin[0]]

    assert with_service(kafka_settings, SETTINGS, body) == [403, 401, 202]
    assert stored(kafka_settings) == [(b"initech", other)]


def test_limits_answer_413_and_429_with_what_to_do(kafka_settings: KafkaSettings) -> None:
    # 1 event/s and a bucket of one request (50 events): the second request comes long before
    # the bucket could refill (50 s), however slow the machine.
    settings = replace(SETTINGS, max_body_bytes=20_000, max_events=50, rate_events_per_s=1)
    batch = b"\n".join(encode_event(api_call(n)) for n in range(50))
    too_many = b"\n".join(encode_event(api_call(n)) for n in range(51))
    too_big = b"\n".join(encode_event(api_call(n)) for n in range(300))

    async def body(session: ClientSession, base: str) -> list[tuple[int, Any, dict[str, str]]]:
        return [
            await post(session, base, too_big, "application/x-ndjson"),
            await post(session, base, too_many, "application/x-ndjson"),
            await post(session, base, batch, "application/x-ndjson"),
            await post(session, base, batch, "application/x-ndjson"),  # over the rate
        ]

    big, many, first, limited = with_service(kafka_settings, settings, body)
    assert (big[0], big[1]["error"]) == (413, "body_too_large")
    assert "split" in big[1]["detail"]
    assert (many[0], many[1]["error"]) == (413, "too_many_events")
    assert "at most 50" in many[1]["detail"]
    assert first[0] == 202
    assert (limited[0], limited[1]["error"]) == (429, "rate_limited")
    assert int(limited[2]["Retry-After"]) >= 1
    assert len(stored(kafka_settings)) == 50


def test_probes_metrics_and_the_openapi_document(kafka_settings: KafkaSettings) -> None:
    async def body(session: ClientSession, base: str) -> dict[str, Any]:
        found = {}
        for path in ("/healthz", "/readyz", "/metrics", "/v1/openapi.json"):
            async with session.get(base + path) as response:
                found[path] = (response.status, await response.read())
        return found

    found = with_service(kafka_settings, SETTINGS, body)
    assert found["/healthz"][0] == found["/readyz"][0] == 200
    assert b"fairuse_ingest_request_seconds" in found["/metrics"][1]
    document = orjson.loads(found["/v1/openapi.json"][1])
    assert found["/v1/openapi.json"][1] == openapi_document()
    assert document["openapi"].startswith("3.1") and "/v1/events" in document["paths"]


def test_a_broker_outage_answers_503_storing_nothing_then_202_once_it_is_back(
    broker_scripts: BrokerScripts,
) -> None:
    broker_scripts.env["KAFKA_START_TIMEOUT_S"] = "300"  # restarts on a busy machine
    assert broker_scripts.run("start").returncode == 0
    kafka = KafkaSettings(bootstrap=broker_scripts.bootstrap, topic_prefix="ingest.")
    create_topics(kafka)
    events = b"\n".join(encode_event(api_call(n)) for n in range(20))
    settings = replace(SETTINGS, broker_timeout_ms=3000, retry_after_s=2)

    async def body(session: ClientSession, base: str) -> list[Any]:
        stopped = await asyncio.to_thread(broker_scripts.run, "stop")
        assert stopped.returncode == 0
        down = await post(session, base, events, "application/x-ndjson")
        async with session.get(f"{base}/readyz") as response:
            not_ready = response.status
        restarted = await asyncio.to_thread(broker_scripts.run, "start", 400)
        assert restarted.returncode == 0, restarted.stderr
        nothing = await asyncio.to_thread(stored, kafka)
        await until_ready(session, base)
        up = await post(session, base, events, "application/x-ndjson")
        return [down, not_ready, nothing, up]

    down, not_ready, nothing, up = with_service(kafka, settings, body)
    assert (down[0], down[1]["error"], down[2]["Retry-After"]) == (503, "broker_unavailable", "2")
    assert not_ready == 503
    assert nothing == []
    assert (up[0], up[1]["accepted"]) == (202, 20)
    assert len(stored(kafka)) == 20


def start_ingest(kafka: KafkaSettings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FAIRUSE_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "FAIRUSE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "FAIRUSE_INGEST_TOKENS": f"{TOKEN}=*",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "fairuse", "ingest", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


MONTH = ["--seed", "8", "--tenants", "3", "--duration", "30d", "--heartbeat-s", "300"]


def test_a_month_over_http_with_ingest_sigkilled_mid_request_equals_replay(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    original = tmp_path / "month.ndjson"
    command = [sys.executable, "-m", "fairuse", "simulate", *MONTH]
    subprocess.run([*command, "--out", str(original)], check=True, capture_output=True)
    sent = ndjson_lines(original)
    port = free_port_pair()
    log = tmp_path / "ingest.log"
    ingest = start_ingest(kafka_settings, port, log)
    sender_log = tmp_path / "sender.log"  # kept by deploy/test.sh if the test fails
    with sender_log.open("wb") as sender_out:
        sender = subprocess.Popen(
            [
                *command,
                "--via",
                "http",
                f"http://127.0.0.1:{port}",
                "--token",
                TOKEN,
                "--batch=500",
            ],
            stderr=sender_out,
        )
    try:
        deadline = time.monotonic() + 300
        while record_count(kafka_settings) < len(sent) // 4:  # a quarter is in
            assert sender.poll() is None, sender_log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        ingest.send_signal(signal.SIGKILL)  # with requests in flight
        ingest.wait()
        ingest = start_ingest(kafka_settings, port, log)
        assert sender.wait(timeout=900) == 0, sender_log.read_text(errors="replace")
    finally:
        for process in (sender, ingest):
            if process.poll() is None:
                process.kill()
                process.wait()
    summary = (
        sender_log.read_text().strip().splitlines()[-1]
    )  # "ingest: N accepted, 0 rejected, R retried"
    assert summary.startswith(f"ingest: {len(sent):,} accepted, 0 rejected"), summary
    assert int(summary.split(", ")[-1].split()[0]) > 0  # the kill cost at least one retry
    arrived = stored(kafka_settings)
    assert sum(len(v) for v in per_tenant_first_copies(arrived).values()) == len(sent)
    expected = ledger_output(sent)
    assert expected["fairuse.violations"]  # the month has breakers
    assert ledger_output(payload for _key, payload in arrived) == expected
