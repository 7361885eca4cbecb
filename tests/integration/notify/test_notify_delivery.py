"""The notifier on the real broker: signed webhooks with retries, e-mail over real SMTP, dead
letters, independence of targets, reloading subscriptions, the health port."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import aiohttp
from notify_support import (
    Mailbox,
    Receiver,
    email_toml,
    fast_settings,
    free_port,
    notice,
    produce,
    read_topic,
    until,
    violation,
    webhook_toml,
    write_subscriptions,
)

from fairuse.notify.cli import serve
from fairuse.notify.service import Notifier
from fairuse.notify.subscriptions import SubscriptionFile
from fairuse.settings import KafkaSettings, Settings


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Notifier]:
    """A notifier running in this event loop until the block ends."""
    assert settings.notify.subscriptions is not None
    notifier = Notifier(settings, SubscriptionFile(settings.notify.subscriptions))
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))
    try:
        await until(lambda: bool(notifier.assigned) or task.done(), "partitions assigned")
        yield notifier
        assert not task.done(), task
    finally:
        stop.set()
        await task


def test_webhook_retried_until_delivered_signed_and_email_sent(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    mailbox = Mailbox()
    mailbox.controller.start()
    subs = tmp_path / "subs.toml"

    async def main() -> None:
        receiver = Receiver(fail_first=2)
        url = await receiver.start()
        write_subscriptions(
            subs,
            webhook_toml("hook", "acme", url)
            + email_toml("ops", "acme", "ops@acme.example", '["enforcement.notice"]'),
        )
        web_port = free_port()
        notify = replace(
            fast_settings(subs), web_port=web_port, smtp_host="127.0.0.1",
            smtp_port=mailbox.controller.port, smtp_from="fairuse@numonix.example",
        )  # fmt: skip
        settings = Settings(kafka=kafka_settings, notify=notify)
        strike = violation(1)
        stop = asyncio.Event()
        task = asyncio.create_task(serve(settings, stop))
        base = f"http://127.0.0.1:{web_port}"
        try:
            async with aiohttp.ClientSession() as http:

                async def status(path: str) -> int:
                    try:
                        async with http.get(base + path) as response:
                            return response.status
                    except aiohttp.ClientConnectionError:
                        return 0

                ready = False
                async with asyncio.timeout(90):
                    while not ready:
                        ready = await status("/readyz") == 200
                        await asyncio.sleep(0.1)
                assert await status("/healthz") == 200
                await produce(kafka_settings, [strike, violation(2, tenant="other")])
                await until(lambda: strike.violation_id in receiver.received, "violation hook")
                await produce(kafka_settings, [notice((strike.violation_id,))])
                await until(lambda: len(receiver.received) == 2, "notice hook")
                await until(lambda: len(mailbox.to("ops@acme.example")) == 1, "notice e-mail")
                metrics = ""
                async with asyncio.timeout(90):  # the counters follow the receiver's answers
                    while 'email",outcome="delivered"} 1.0' not in metrics or (
                        'webhook",outcome="delivered"} 2.0' not in metrics
                    ):
                        async with http.get(base + "/metrics") as response:
                            metrics = await response.text()
        finally:
            stop.set()
            await task
            await receiver.stop()

        # every attempt was signed; the first two of each record failed, the third delivered (a
        # consumer-group rebalance may repeat an attempt in flight: at least once)
        assert receiver.bad_signatures == 0
        assert set(receiver.attempts) == {strike.violation_id, "acme-notice-1"}
        assert min(receiver.attempts.values()) >= 3
        payload = receiver.received[strike.violation_id]
        assert payload["type"] == "violation.exceeded" and payload["data"] == strike.to_dict()
        failed = re.search(r'attempts_total\{channel="webhook",outcome="failed"\} (\d+)', metrics)
        assert failed and int(failed[1]) >= 4
        assert 'fairuse_notify_delivery_latency_seconds_count{channel="webhook"} 2.0' in metrics
        assert "acme" not in metrics  # no tenant label

        mail = mailbox.to("ops@acme.example")[0]
        assert mail["From"] == "fairuse@numonix.example"
        plain = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
        for text in (plain, html):
            assert "API calls in 2026-11-02: 2,410 calls observed against a limit of 2,400" in text
            assert "on or after 2026-11-19 00:00 UTC, the service is throttled down" in text
            assert "usage notice" in text

        found = await read_topic(kafka_settings, "notifications", lambda found: len(found) >= 7)
        log = list({e["notification_id"]: e for e in found}.values())  # as the warehouse's FINAL
        hook = sorted(
            (e["attempt"], e["outcome"], e["status"])
            for e in log
            if e["record_id"] == strike.violation_id
        )
        assert hook[:2] == [(1, "failed", "500"), (2, "failed", "500")], found
        assert hook[-1][1:] == ("delivered", "204") and hook[-1][0] >= 3, found
        mails = [e for e in log if e["channel"] == "email"]
        assert [(m["outcome"], m["status"][:3], m["target"]) for m in mails] == [
            ("delivered", "250", "ops@acme.example")
        ]
        assert all(e["latency_ms"] > 0 and e["tenant_id"] == "acme" for e in log)

    try:
        asyncio.run(main())
    finally:
        mailbox.controller.stop()


def test_failing_targets_are_dead_lettered_and_slow_ones_delay_nobody(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    mailbox = Mailbox(refuse=("gone@acme.example",))
    mailbox.controller.start()
    subs = tmp_path / "subs.toml"

    async def main() -> None:
        good, slow = Receiver(), Receiver(gate=asyncio.Event())
        refused = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
        write_subscriptions(
            subs,
            webhook_toml("good", "acme", await good.start())
            + webhook_toml("slow", "acme", await slow.start())
            + webhook_toml("refused", "acme", refused)
            + email_toml("gone", "acme", "gone@acme.example"),
        )
        notify = replace(
            fast_settings(subs, retry_max_age_s=2.0),
            smtp_host="127.0.0.1",
            smtp_port=mailbox.controller.port,
        )
        records = [violation(n) for n in range(3)]
        ids = {r.violation_id for r in records}
        try:
            async with running(Settings(kafka=kafka_settings, notify=notify)):
                await produce(kafka_settings, records)
                await until(lambda: set(good.received) == ids, "the good endpoint's deliveries")
                # The slow one's requests may still be on their way when the good one has all
                # three (a loaded run caught it at 2): wait for them, none answered yet.
                await until(lambda: slow.in_flight == 3, "all three held by the slow endpoint")
                assert not slow.received
                dead = await read_topic(
                    kafka_settings,
                    "notify-dead-letter",
                    lambda found: len({(e["address"], e["record_id"]) for e in found}) == 6,
                )
                # after the dead letters the notifier keeps going
                later = violation(9)
                await produce(kafka_settings, [later])
                await until(lambda: later.violation_id in good.received, "a later delivery")
                assert slow.gate is not None
                slow.gate.set()
                await until(lambda: set(slow.received) >= ids, "the slow endpoint's deliveries")
        finally:
            await good.stop()
            await slow.stop()

        by_target: dict[str, list[dict]] = {}
        for entry in dead:
            by_target.setdefault(entry["address"], []).append(entry)
        assert sorted(by_target) == ["gone@acme.example", refused]
        assert {e["record_id"] for e in by_target[refused]} == ids
        # the refusing server was retried until the maximum age; the 550 is permanent
        assert all(e["attempts"] > 1 and "Connect" in e["reason"] for e in by_target[refused])
        assert all(
            e["attempts"] == 1 and "550" in e["reason"] for e in by_target["gone@acme.example"]
        )

    try:
        asyncio.run(main())
    finally:
        mailbox.controller.stop()


def test_subscription_changes_apply_without_a_restart(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    subs = tmp_path / "subs.toml"

    async def main() -> None:
        first, second = Receiver(), Receiver()
        first_toml = webhook_toml("first", "acme", await first.start())
        write_subscriptions(subs, first_toml)
        settings = Settings(kafka=kafka_settings, notify=fast_settings(subs))
        try:
            async with running(settings) as notifier:
                await produce(kafka_settings, [violation(1)])
                await until(lambda: len(first.received) == 1, "first delivery")
                write_subscriptions(
                    subs, first_toml + webhook_toml("second", "*", await second.start())
                )
                await until(lambda: len(notifier.subscriptions.current.items) == 2, "reloaded file")
                await produce(kafka_settings, [violation(2, tenant="zeta")])
                await until(lambda: len(second.received) == 1, "delivery to the new subscriber")
                write_subscriptions(subs, "[[subscription]]\nname = ")  # broken
                await until(lambda: notifier.subscriptions.error is not None, "bad file noticed")
                await produce(kafka_settings, [violation(3)])
                await until(
                    lambda: len(first.received) == 2 and len(second.received) == 2,
                    "deliveries under the last good version",
                )
                assert notifier.problems() and "subscriptions file is bad" in notifier.problems()[0]
        finally:
            await first.stop()
            await second.stop()
        assert len(first.received) == 2  # the zeta record was not for "first"

    asyncio.run(main())
