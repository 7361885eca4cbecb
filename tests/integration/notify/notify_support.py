"""Helpers of the notifier's integration tests: a webhook receiver, an SMTP server, records."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import threading
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from fairuse.kafka import client_kwargs
from fairuse.records import Enforcement, Violation
from fairuse.settings import KafkaSettings, NotifySettings

SECRET = "whsec_" + base64.b64encode(b"a test secret of thirty-two byte").decode()
T0 = 1_793_577_600_000  # 2026-11-02T00:00:00Z
DAY = 86_400_000


def fast_settings(subscriptions: Path, **overrides: Any) -> NotifySettings:
    """Notifier settings with retries in fractions of a second (tests only change settings)."""
    values: dict[str, Any] = {
        "subscriptions": subscriptions, "group_id": f"notify-{os.urandom(4).hex()}",
        "reload_interval_s": 0.2, "retry_initial_s": 0.2, "retry_max_delay_s": 1.0,
        "retry_max_age_s": 4.0, "http_timeout_s": 30.0, "smtp_timeout_s": 30.0,
    }  # fmt: skip
    values.update(overrides)
    return NotifySettings(**values)


def webhook_toml(name: str, tenant: str, url: str, kinds: str = '["*"]') -> str:
    """One ``[[subscription]]`` with a webhook."""
    return (
        f'[[subscription]]\nname = "{name}"\ntenant = "{tenant}"\nkinds = {kinds}\n'
        f'webhook = {{ url = "{url}", secret = "{SECRET}" }}\n\n'
    )


def email_toml(name: str, tenant: str, address: str, kinds: str = '["*"]') -> str:
    """One ``[[subscription]]`` with an e-mail address."""
    return (
        f'[[subscription]]\nname = "{name}"\ntenant = "{tenant}"\nkinds = {kinds}\n'
        f'email = ["{address}"]\n\n'
    )


def write_subscriptions(path: Path, text: str) -> None:
    """Write ``text`` and move the modification time forward so a reload sees the change even
    within the file system's time resolution."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    stamp = max(path.stat().st_mtime_ns, before + 1_000_000_000)
    os.utime(path, ns=(stamp, stamp))


def violation(n: int, tenant: str = "acme", status: str = "exceeded") -> Violation:
    """An api-calls violation of day ``n`` of November 2026."""
    return Violation(
        violation_id=f"{tenant}-v{n}-{status}", tenant_id=tenant, metric="api_calls",
        period=f"2026-11-{n + 1:02d}", status=status, observed=2400 + 10 * n, limit=2400,
        unit="calls", seats=3, policy_revision="2021-01-12", ts=T0 + n * DAY,
    )  # type: ignore[arg-type]  # fmt: skip


def notice(strikes: tuple[str, ...], tenant: str = "acme") -> Enforcement:
    """An advance notice of throttling citing ``strikes``."""
    return Enforcement(
        enforcement_id=f"{tenant}-notice-{len(strikes)}", tenant_id=tenant, kind="notice",
        action="throttle", ts=T0 + 3 * DAY, effective_at=T0 + 17 * DAY, strikes=strikes,
    )  # fmt: skip


async def produce(settings: KafkaSettings, records: list[Violation | Enforcement]) -> None:
    """Publish ``records`` to their topics, keyed by tenant."""
    producer = AIOKafkaProducer(acks="all", **client_kwargs(settings))
    await producer.start()
    try:
        for record in records:
            name = "violations" if isinstance(record, Violation) else "enforcement"
            await producer.send_and_wait(
                settings.topic(name), record.to_json(), key=record.tenant_id.encode()
            )
    finally:
        await producer.stop()


async def read_topic(
    settings: KafkaSettings, name: str, enough: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The JSON records of topic ``name`` from the beginning, once ``enough`` of them arrived."""
    topic = settings.topic(name)
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs(settings))
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            partitions = set(range(settings.events_partitions))
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        await consumer.seek_to_beginning()
        async with asyncio.timeout(90):
            while not enough(found):
                batch = await consumer.getmany(timeout_ms=300)
                found += [orjson.loads(m.value) for ms in batch.values() for m in ms]
    finally:
        await consumer.stop()
    return found


async def until(check: Callable[[], bool], what: str, timeout_s: float = 90) -> None:
    """Wait until ``check()`` holds; fail after ``timeout_s`` (generous: the machine is busy)."""
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.05)
    assert check(), what


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (nothing listens there: connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Receiver:
    """A webhook endpoint on loopback that verifies signatures with the ``standardwebhooks``
    package and fails the first ``fail_first`` attempts of each message id (status 500)."""

    def __init__(self, fail_first: int = 0, gate: asyncio.Event | None = None) -> None:
        self.fail_first = fail_first
        self.gate = gate
        self.failing = False  # while True every attempt fails
        self.attempts: dict[str, int] = {}
        self.received: dict[str, dict[str, Any]] = {}  # verified and answered 2xx, by id
        self.in_flight = 0
        self.bad_signatures = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = Webhook(SECRET).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.bad_signatures += 1
            return web.Response(status=400)
        msg_id = request.headers["webhook-id"]
        self.attempts[msg_id] = self.attempts.get(msg_id, 0) + 1
        if self.gate is not None:
            self.in_flight += 1
            await self.gate.wait()
            self.in_flight -= 1
        if self.failing or self.attempts[msg_id] <= self.fail_first:
            return web.Response(status=500)
        self.received[msg_id] = payload
        return web.Response(status=204)

    async def start(self) -> str:
        """Serve on a free loopback port; the URL to subscribe."""
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        if self.gate is not None:
            self.gate.set()
        if self._runner is not None:
            await self._runner.cleanup()


class Mailbox:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it accepts and refuses the
    recipients in ``refuse`` with 550."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.refuse = refuse
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        """Messages received for ``address``."""
        with self._lock:
            return [m for m in self.messages if m["To"] == address]
