"""A SIGKILLed notifier resumes its pending deliveries; the delivery log reaches the warehouse
through the sink and ``fairuse report notices`` shows when each notice reached the customer."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import pytest
from notify_support import (
    Receiver,
    fast_settings,
    free_port,
    notice,
    produce,
    until,
    violation,
    webhook_toml,
    write_subscriptions,
)
from test_notify_delivery import running

from fairuse.cli import main as fairuse_main
from fairuse.settings import KafkaSettings, Settings, WarehouseSettings
from fairuse.topics import consumer_lag_async
from fairuse.warehouse.sink import run_sink


async def _notifier_process(
    kafka: KafkaSettings, subscriptions: Path, group: str, log: Path
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "FAIRUSE_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "FAIRUSE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "FAIRUSE_NOTIFY_SUBSCRIPTIONS": str(subscriptions),
        "FAIRUSE_NOTIFY_GROUP_ID": group,
        "FAIRUSE_NOTIFY_WEB_PORT": str(free_port()),
        "FAIRUSE_NOTIFY_RETRY_INITIAL_S": "0.3",
        "FAIRUSE_NOTIFY_RETRY_MAX_DELAY_S": "1",
        "FAIRUSE_NOTIFY_RETRY_MAX_AGE_S": "3600",
    }
    with log.open("a") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fairuse", "notify", env=env, stdout=out, stderr=out
        )


def test_a_notifier_sigkilled_mid_delivery_resumes_without_losing_a_notice(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    subs, log = tmp_path / "subs.toml", tmp_path / "notify.log"
    group = f"notify-{uuid.uuid4().hex[:8]}"
    records = [violation(n) for n in range(4)]
    ids = {r.violation_id for r in records}

    async def lag() -> int:
        topic = kafka_settings.topic("violations")
        return sum((await consumer_lag_async(kafka_settings, group, topic)).values())

    async def main() -> None:
        receiver = Receiver()
        receiver.failing = True  # every attempt fails until the notifier was killed
        write_subscriptions(subs, webhook_toml("hook", "acme", await receiver.start()))
        first = await _notifier_process(kafka_settings, subs, group, log)
        second = None
        try:
            await produce(kafka_settings, records)
            await until(lambda: set(receiver.attempts) == ids, "a first attempt of each", 120)
            async with asyncio.timeout(120):  # the input is committed: retries live in the state
                while await lag():
                    await asyncio.sleep(0.2)
            first.kill()
            assert await first.wait() == -9
            assert not receiver.received
            receiver.failing = False
            second = await _notifier_process(kafka_settings, subs, group, log)
            await until(lambda: set(receiver.received) == ids, "every notice after restart", 120)
        except BaseException:
            print(log.read_text())
            raise
        finally:
            for process in (first, second):
                if process is not None and process.returncode is None:
                    process.terminate()
                    await process.wait()
            await receiver.stop()
        assert second is not None and second.returncode == 0  # SIGTERM: a clean stop
        assert receiver.bad_signatures == 0

    asyncio.run(main())


def test_the_delivery_log_reaches_the_warehouse_and_report_notices_shows_it(
    kafka_settings: KafkaSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    subs = tmp_path / "subs.toml"
    strike = violation(1)
    step = notice((strike.violation_id,))
    refused = f"http://127.0.0.1:{free_port()}/hook"

    async def main() -> None:
        receiver = Receiver(fail_first=1)
        write_subscriptions(
            subs,
            webhook_toml("hook", "acme", await receiver.start())
            + webhook_toml("refused", "acme", refused, '["enforcement"]'),
        )
        settings = Settings(kafka=kafka_settings, notify=fast_settings(subs, retry_max_age_s=1.5))
        try:
            async with running(settings) as notifier:
                await produce(kafka_settings, [strike, step])
                await until(lambda: len(receiver.received) == 2, "both notices delivered")
                await until(lambda: "dead_lettered" in notifier.known.values(), "dead letter")
        finally:
            await receiver.stop()
        sink_settings = Settings(
            kafka=kafka_settings,
            data_dir=tmp_path,
            warehouse=WarehouseSettings(sink_batch_rows=100, sink_batch_ms=200),
        )
        await run_sink(sink_settings, asyncio.Event(), group_id="sink-test", idle_exit_s=3)

    asyncio.run(main())
    monkeypatch.setenv("FAIRUSE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FAIRUSE_WAREHOUSE_DSN", raising=False)
    args = ["report", "notices", "--tenant", "acme", "--month", "2026-11", "--format", "json"]
    assert fairuse_main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    found = {(r["record_id"], r["target"]): r for r in rows}
    receiver_url = next(target for _, target in found if target != refused)
    assert set(found) == {
        (strike.violation_id, receiver_url),
        (step.enforcement_id, receiver_url),
        (step.enforcement_id, refused),
    }
    delivered = found[(step.enforcement_id, receiver_url)]
    assert (delivered["state"], delivered["attempts"], delivered["last_status"]) == (
        "delivered", 2, "204",
    )  # fmt: skip
    assert delivered["delivered_at"] > delivered["first_attempt_at"]
    assert delivered["kind"] == "enforcement.notice"
    dead = found[(step.enforcement_id, refused)]
    assert dead["state"] == "dead_lettered" and dead["delivered_at"] is None
    assert "Connect" in dead["last_error"]
    assert fairuse_main([*args[:-2], "--kind", "violation", "--format", "json"]) == 0
    assert [r["record_id"] for r in json.loads(capsys.readouterr().out)] == [strike.violation_id]
