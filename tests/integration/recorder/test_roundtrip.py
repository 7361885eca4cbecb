"""Simulator -> RecorderClient -> real broker -> a plain aiokafka consumer reads back exactly it.

Per tenant: the same number of records, the same content digest, in the same order, keyed by the
tenant id.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from pathlib import Path

import pytest

from fairuse.cli import main
from fairuse.recorder.client import ProducerTuning, RecorderClient
from fairuse.recorder.simulator import DAY_MS, Emission, FleetConfig, simulate
from fairuse.settings import KafkaSettings
from recorder_support import read_back

CONFIG = FleetConfig(seed=21, tenants=6, duration_ms=DAY_MS, fault_rate=0.005)

Digests = dict[str, tuple[int, str]]


def digests(records: list[tuple[bytes, bytes]]) -> Digests:
    """Per key: (count, sha256 over the payloads in order)."""
    hashes: dict[str, hashlib._Hash] = defaultdict(hashlib.sha256)
    counts: dict[str, int] = defaultdict(int)
    for key, payload in records:
        hashes[key.decode()].update(payload + b"\n")
        counts[key.decode()] += 1
    return {key: (counts[key], hashes[key].hexdigest()) for key in hashes}


def sent_digests(emissions: list[Emission]) -> Digests:
    return digests([(e.tenant_id.encode(), e.payload) for e in emissions])


def test_every_event_arrives_once_in_order_per_tenant_via_send_many(
    kafka_settings: KafkaSettings,
) -> None:
    emissions = list(simulate(CONFIG))
    assert any(e.fault == "garbage" for e in emissions)

    async def run() -> tuple[RecorderClient, list[tuple[bytes, bytes]]]:
        async with RecorderClient(kafka_settings) as client:
            await client.send_many_raw((e.tenant_id.encode(), e.payload) for e in emissions)
        return client, await read_back(kafka_settings)

    client, records = asyncio.run(run())
    assert client.delivered == len(emissions) and client.failed == 0
    assert len(records) == len(emissions)
    assert digests(records) == sent_digests(emissions)


def test_one_by_one_sends_with_little_room_keep_order_too(kafka_settings: KafkaSettings) -> None:
    emissions = list(simulate(FleetConfig(seed=22, tenants=3, duration_ms=DAY_MS // 4)))
    typed = [e.event for e in emissions if e.event is not None]

    async def run() -> list[tuple[bytes, bytes]]:
        tuning = ProducerTuning(max_in_flight=64, linger_ms=1)
        async with RecorderClient(kafka_settings, tuning) as client:
            half = len(typed) // 2
            for event in typed[:half]:
                await client.send(event)
            await client.send_many(typed[half:])
        return await read_back(kafka_settings)

    assert digests(asyncio.run(run())) == sent_digests(emissions)


def test_fairuse_simulate_to_kafka_matches_its_ndjson_output(
    kafka_settings: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIRUSE_KAFKA_BOOTSTRAP", kafka_settings.bootstrap)
    monkeypatch.setenv("FAIRUSE_KAFKA_TOPIC_PREFIX", kafka_settings.topic_prefix)
    args = ["simulate", "--seed", "5", "--tenants", "4", "--duration", "12h", "--faults"]
    assert main(args) == 0
    out = tmp_path / "sim.ndjson"
    assert main([*args, "--out", str(out)]) == 0
    lines = out.read_bytes().splitlines()
    records = asyncio.run(read_back(kafka_settings))
    assert len(records) == len(lines) > 1000
    assert sorted(payload for _key, payload in records) == sorted(lines)


def test_inspect_events_counts_what_simulate_sent(
    kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("FAIRUSE_KAFKA_BOOTSTRAP", kafka_settings.bootstrap)
    monkeypatch.setenv("FAIRUSE_KAFKA_TOPIC_PREFIX", kafka_settings.topic_prefix)
    config = FleetConfig(seed=9, tenants=3, duration_ms=DAY_MS // 2, fault_rate=0.01)
    emissions = list(simulate(config))
    args = ["simulate", "--seed", "9", "--tenants", "3", "--duration", "12h", "--faults", "0.01"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["inspect", "events", "--from-beginning", "--timeout", "30"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert (
        table[0] == f"{kafka_settings.topic('events')}: {len(emissions):,} records from 3 tenants"
    )
    rows = {line.split()[0]: line.split()[1:] for line in table[3:] if line[0] != "-"}
    totals = {e.tenant_id: 0 for e in emissions}
    for emission in emissions:
        totals[emission.tenant_id] += 1
    for tenant, total in totals.items():
        assert int(rows[tenant][-1]) == total
    assert int(rows["TOTAL"][-1]) == len(emissions)


def test_inspect_without_from_beginning_tails_and_reports_nothing_old(
    kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("FAIRUSE_KAFKA_BOOTSTRAP", kafka_settings.bootstrap)
    monkeypatch.setenv("FAIRUSE_KAFKA_TOPIC_PREFIX", kafka_settings.topic_prefix)
    assert main(["simulate", "--events", "500"]) == 0
    capsys.readouterr()
    assert main(["inspect", "events", "--timeout", "1"]) == 0
    assert capsys.readouterr().out.startswith(f"{kafka_settings.topic('events')}: 0 records")
