"""The recorder's durable spool against a real broker: outages, a SIGKILLed client, a damaged
segment, a full spool. Tests that stop a broker use their own private one."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from fairuse.recorder.cli import bounded
from fairuse.recorder.client import RecorderClient
from fairuse.recorder.simulator import FleetConfig
from fairuse.recorder.spool import Spool, SpoolOptions
from fairuse.settings import KafkaSettings
from fairuse.topics import create_topics
from kafka_support import BrokerScripts
from recorder_support import (
    ledger_output,
    ndjson_lines,
    per_tenant_first_copies,
    read_back,
    stored,
)

OUTAGE_S = 60


async def until(condition, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    """Poll ``condition`` until true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


def start_private_broker(scripts: BrokerScripts) -> KafkaSettings:
    scripts.env["KAFKA_START_TIMEOUT_S"] = "300"  # restarts on a busy machine
    started = scripts.run("start", 400)
    assert started.returncode == 0, started.stderr
    kafka = KafkaSettings(bootstrap=scripts.bootstrap, topic_prefix="spool.")
    create_topics(kafka)
    return kafka


def test_a_60s_broker_outage_loses_nothing_and_keeps_each_tenants_order(
    broker_scripts: BrokerScripts, tmp_path: Path
) -> None:
    kafka = start_private_broker(broker_scripts)
    emissions = list(bounded(FleetConfig(seed=3, tenants=8, duration_ms=None), 100_000))
    records = [(e.tenant_id.encode(), e.payload) for e in emissions]
    options = SpoolOptions(segment_bytes=1024**2)

    async def run() -> RecorderClient:
        async with RecorderClient(kafka, spool_dir=tmp_path / "spool", spool=options) as client:
            await client.send_many_raw(records[:20_000])
            await asyncio.wait_for(client.flush(), 300)
            stopped = await asyncio.to_thread(broker_scripts.run, "stop")
            assert stopped.returncode == 0, stopped.stderr
            stopped_at = time.monotonic()
            for key, payload in records[20_000:]:  # one send per event, as a recorder does
                await client.send_raw(key, payload)
            assert client.sent == len(records)  # every send returned: all spooled
            await until(lambda: client.failed > 0, 120, "a failed delivery attempt")
            assert client.spooled_bytes > 0 and client.oldest_spooled_age_s > 0
            await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped_at)))  # outage
            restarted = await asyncio.to_thread(broker_scripts.run, "start", 400)
            assert restarted.returncode == 0, restarted.stderr
            await asyncio.wait_for(client.flush(), 600)
            assert client.spooled_bytes == 0
        return client

    client = asyncio.run(run())
    assert client.delivered >= len(records)
    sent: dict[bytes, list[bytes]] = defaultdict(list)
    for key, payload in records:
        sent[key].append(payload)
    assert per_tenant_first_copies(stored(kafka)) == sent
    assert not list((tmp_path / "spool").glob("*.seg"))  # delivered segments are removed
    label = {"spool": str(tmp_path / "spool")}
    assert REGISTRY.get_sample_value("fairuse_spool_failed_events_total", label) == client.failed
    assert REGISTRY.get_sample_value("fairuse_spool_bytes", label) == 0


def simulate_command(spool: Path) -> list[str]:
    return [
        sys.executable, "-m", "fairuse", "simulate", "--seed", "4", "--tenants", "4",
        "--duration", "2d", "--spool", str(spool),
    ]  # fmt: skip


def test_a_client_sigkilled_in_an_outage_resumes_from_its_spool_and_the_ledger_agrees(
    broker_scripts: BrokerScripts, tmp_path: Path
) -> None:
    kafka = start_private_broker(broker_scripts)
    assert broker_scripts.run("stop").returncode == 0
    spool = tmp_path / "spool"
    env = {
        **os.environ,
        "FAIRUSE_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "FAIRUSE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
    }
    first_log = tmp_path / "simulate-first.log"  # kept by deploy/test.sh if the test fails
    with first_log.open("wb") as log:
        first = subprocess.Popen(simulate_command(spool), env=env, stderr=log)
    deadline = time.monotonic() + 300
    while sum(p.stat().st_size for p in spool.glob("*.seg")) < 1024**2:  # some spooled
        assert first.poll() is None, first_log.read_text(errors="replace")
        assert time.monotonic() < deadline, "the simulator spooled nothing"
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    restarted = broker_scripts.run("start", 400)
    assert restarted.returncode == 0, restarted.stderr
    rerun = subprocess.run(
        simulate_command(spool), env=env, capture_output=True, text=True, timeout=900
    )
    assert rerun.returncode == 0, rerun.stderr
    original = tmp_path / "original.ndjson"
    out = subprocess.run(
        [*simulate_command(spool)[:-2], "--out", str(original)], capture_output=True, timeout=300
    )
    assert out.returncode == 0
    sent = ndjson_lines(original)
    arrived = stored(kafka)
    assert len(arrived) > len(sent)  # the spool's records came again, then the rerun's
    copies = per_tenant_first_copies(arrived)  # repeats carry the same id and bytes
    assert sum(len(v) for v in copies.values()) == len(sent)
    assert ledger_output(payload for _key, payload in arrived) == ledger_output(sent)


def test_a_truncated_last_segment_delivers_the_intact_records_and_reports_the_damage(
    kafka_settings: KafkaSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool_dir = tmp_path / "spool"
    spool = Spool.open(spool_dir, SpoolOptions(segment_bytes=4096))
    pad = b"x" * 40
    records = [(b"tenant-%d" % (i % 3), b'{"n": %d, "pad": "%s"}' % (i, pad)) for i in range(300)]
    for i in range(0, 300, 10):
        spool.append(records[i : i + 10])
    spool.close()
    last = sorted(spool_dir.glob("*.seg"))[-1]
    os.truncate(last, last.stat().st_size - 7)  # a power cut in the middle of the last record

    async def run() -> None:
        async with RecorderClient(kafka_settings, spool_dir=spool_dir) as client:
            (damage,) = client.spool.damage  # type: ignore[union-attr]
            assert damage.segment == last and damage.reason.startswith("truncated")
            await asyncio.wait_for(client.flush(), 120)

    with caplog.at_level(logging.ERROR, logger="fairuse.recorder.spool"):
        asyncio.run(run())
    assert f"spool segment {last} damaged" in caplog.text
    assert Path(f"{last}.damaged").stat().st_size > 0  # kept for inspection, not dropped
    damaged = REGISTRY.get_sample_value(
        "fairuse_spool_damaged_bytes_total", {"spool": str(spool_dir)}
    )
    assert damaged is not None and damaged > 0
    assert sorted(stored(kafka_settings)) == sorted(records[:-1])


def test_a_full_spool_blocks_send_until_delivery_makes_room(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    kafka = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:12]}.")
    options = SpoolOptions(max_bytes=64 * 1024, segment_bytes=8 * 1024)
    records = [(b"acme", b'{"n": %d, "pad": "%s"}' % (i, b"y" * 80)) for i in range(3000)]

    async def run() -> RecorderClient:
        # The topic does not exist yet: delivery fails, the spool fills, send must wait.
        async with RecorderClient(kafka, spool_dir=tmp_path / "spool", spool=options) as client:
            sending = asyncio.create_task(client.send_many_raw(records))
            await until(lambda: client.failed > 0, 120, "a failed delivery")
            await until(
                lambda: client.spooled_bytes > options.max_bytes - 2000, 120, "a full spool"
            )
            assert not sending.done() and client.sent < len(records)  # blocked, nothing dropped
            await asyncio.to_thread(create_topics, kafka)
            await asyncio.wait_for(sending, 300)
            await asyncio.wait_for(client.flush(), 300)
        return client

    client = asyncio.run(run())
    assert client.sent == len(records)
    assert asyncio.run(read_back(kafka)) == records
