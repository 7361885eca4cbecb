"""The RocksDB store (``FAIRUSE_WORKER_STORE=rocksdb://``): a restarted worker recovers from its
local store plus the changelog's tail, or from the whole changelog when the store is gone; and
it works with state larger than the memory the process may use."""

from __future__ import annotations

import asyncio
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from rocksdict import AccessType, Options, Rdict
from stream_harness import (
    WorkerProcess,
    assert_exactly_as_replay,
    call_stored,
    caught_up,
    end_offsets,
    key_of,
    lag,
    partition_of,
    produce,
    produce_batches,
    read_lines,
    replay,
    run_until_caught_up,
    wait_for,
)

from fairuse.kafka import client_kwargs
from fairuse.policy import DEFAULT_POLICY
from fairuse.recorder.client import RecorderClient
from fairuse.settings import KafkaSettings
from fairuse.stream.core import Inbound, StreamCore, apply_writes
from fairuse.stream.delivery import changelog_key

ROCKSDB = {"FAIRUSE_WORKER_STORE": "rocksdb://"}


def delete_all_records(kafka: KafkaSettings, topic: str) -> None:
    """Empty every partition of the compacted ``topic`` (records can only be deleted from a
    topic with the ``delete`` cleanup policy, so it gets that one)."""
    ends = end_offsets(kafka, topic)

    async def run() -> None:
        admin = AIOKafkaAdminClient(**client_kwargs(kafka))
        await admin.start()
        try:
            policy = {"cleanup.policy": "delete"}
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, policy)])
            await admin.delete_records(
                {TopicPartition(topic, p): RecordsToDelete(end) for p, end in ends.items() if end}
            )
        finally:
            await admin.close()

    asyncio.run(run())


def run_in_two_halves(
    kafka: KafkaSettings, worker, events: Path, between, graceful: bool = False
) -> None:
    """Process the first half, stop the worker (SIGTERM if ``graceful``, else SIGKILL), run
    ``between``, then process the second half with the worker started again."""
    lines = read_lines(events)
    half = len(lines) // 2
    produce(kafka, lines[:half])
    run_until_caught_up(kafka, worker, "the first half")
    worker.stop() if graceful else worker.kill()
    between()
    produce(kafka, lines[half:])
    run_until_caught_up(kafka, worker, "the second half")


def test_restart_recovers_from_the_local_store_not_the_whole_changelog(
    kafka_settings: KafkaSettings, workers, simulated_events: Path, tmp_path: Path
) -> None:
    """The changelog is emptied while the worker is down: only its local store still holds
    the state, and the second half's records are still right. The worker is stopped as a
    restart stops it (SIGTERM): a SIGKILL may land after a batch's commit and before its local
    store write, which only the changelog (emptied here) would then restore."""
    expected = replay(simulated_events, tmp_path)
    worker = workers(**ROCKSDB)
    changelog = f"{worker.app_id}-tenants-changelog"
    run_in_two_halves(
        kafka_settings,
        worker,
        simulated_events,
        lambda: delete_all_records(kafka_settings, changelog),
        graceful=True,
    )
    assert any((worker.workdir / "var" / "worker" / worker.app_id).rglob("*.db"))
    assert_exactly_as_replay(kafka_settings, expected)


def test_restart_without_the_local_store_recovers_from_the_changelog(
    kafka_settings: KafkaSettings, workers, simulated_events: Path, tmp_path: Path
) -> None:
    expected = replay(simulated_events, tmp_path)
    worker = workers(**ROCKSDB)
    store = worker.workdir / "var" / "worker" / worker.app_id
    run_in_two_halves(kafka_settings, worker, simulated_events, lambda: shutil.rmtree(store))
    assert_exactly_as_replay(kafka_settings, expected)


DATA_LIMIT = 320 * 1024 * 1024
"""RLIMIT_DATA of the worker in the test below: its heap, anonymous mappings and thread
stacks (an idle worker uses about 160 MiB of it, mostly thread stacks; its fetches and batches,
bounded below, take the rest)."""
HOARDED = 1_000_000  # stored calls (with 128-character ids: about 420 bytes of state each)
ID_CHARS = 128  # the longest ids the event contract accepts


def limit_data() -> None:
    resource.setrlimit(resource.RLIMIT_DATA, (DATA_LIMIT, DATA_LIMIT))


def store_bytes(tables: Path) -> int:
    """Bytes of keys and values in the (stopped) worker's RocksDB tenants stores."""
    total = 0
    for path in tables.rglob("tenants-*.db"):
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            total += sum(len(key) + len(value) for key, value in db.items())
        finally:
            db.close()
    return total


def leave_as_processed(
    kafka: KafkaSettings, worker: WorkerProcess, payloads: list[bytes], partition: int
) -> None:
    """Leave the topics and the (stopped) worker's local store as the worker leaves them once
    it has processed ``payloads``, the first events of ``partition`` (offsets 0 on): their
    output records on the topics, their state in its RocksDB store of ``partition``, the
    partition's position (positions changelog, group offset). The same core, in this process:
    the worker's own processing, and Faust's recovery of the changelog, would take hours here."""
    store: dict[str, bytes] = {}
    core = StreamCore(DEFAULT_POLICY, kafka, store)
    topic, outputs = kafka.topic("events"), []
    for start in range(0, len(payloads), 4000):
        chunk = payloads[start : start + 4000]
        batch = core.process(
            Inbound(payload, topic, partition, start + i) for i, payload in enumerate(chunk)
        )
        outputs += batch.outputs
        apply_writes(store, core.commit())
    (path,) = worker.workdir.rglob(f"tenants-{partition}.db")
    db = Rdict(str(path), Options(raw_mode=True))
    try:
        for key, value in store.items():
            db[changelog_key(key)] = value
    finally:
        db.close()
    positions = f"{worker.app_id}-positions-changelog"
    position = changelog_key(str(partition)), str(len(payloads)).encode()
    produce_batches(
        kafka,
        [
            *(
                (o.topic, partition_of(o.key.decode(), kafka.events_partitions), o.key, o.value)
                for o in outputs
            ),
            (positions, partition, *position),
        ],
    )
    next_offset = len(payloads)
    asyncio.run(commit_offset(kafka, worker.app_id, TopicPartition(topic, partition), next_offset))


async def commit_offset(kafka: KafkaSettings, group: str, tp: TopicPartition, offset: int) -> None:
    """Commit ``offset`` of ``tp`` for ``group`` (whose members are gone)."""
    consumer = AIOKafkaConsumer(group_id=group, enable_auto_commit=False, **client_kwargs(kafka))
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: offset})
    finally:
        await consumer.stop()


def produce_fast(kafka: KafkaSettings, payloads: list[bytes]) -> None:
    """Produce ``payloads`` keyed by tenant in whole batches (the recorder client's fast
    path; the same partitions and order per partition as :func:`produce`)."""

    async def run() -> None:
        async with RecorderClient(kafka) as client:
            await client.send_many_raw((key_of(p), p) for p in payloads)
            await client.flush()

    asyncio.run(run())


def test_state_larger_than_the_memory_limit(
    kafka_settings: KafkaSettings, workers, simulated_events: Path, tmp_path: Path
) -> None:
    """A worker whose data segment is limited to 256 MiB holds a tenant with a million stored
    calls (well over 256 MiB of state, in its local store as a previous run left it) beside the
    simulated fleet on its partition: it checks the tenant's repeated and new calls against
    that state, keeps going, and every output equals replay's."""
    probe = [sys.executable, "-c", f"bytearray({DATA_LIMIT})"]
    refused = subprocess.run(probe, preexec_fn=limit_data, capture_output=True)
    assert b"MemoryError" in refused.stderr, "RLIMIT_DATA does not bound memory here"

    fleet = read_lines(simulated_events)
    first = orjson.loads(fleet[0])
    partitions = kafka_settings.events_partitions
    partition = partition_of(first["tenant_id"], partitions)
    big = next(
        name for i in range(1000) if partition_of(name := f"hoarder-{i}", partitions) == partition
    )
    ts = first["ts"]
    hoarded = [call_stored(big, i, ts + i, ID_CHARS) for i in range(HOARDED)]
    # after the fleet: re-deliveries of stored calls (dropped as duplicates) and new calls
    tail = hoarded[::1000] + [
        call_stored(big, i, ts + i, ID_CHARS) for i in range(HOARDED, HOARDED + 1000)
    ]
    events = tmp_path / "events.ndjson"
    events.write_bytes(b"\n".join(hoarded + fleet + tail))
    expected = replay(events, tmp_path)
    worker = workers(
        FAIRUSE_WORKER_STORE="rocksdb://",
        FAIRUSE_WORKER_MAX_RECORD_BYTES=str(1024 * 1024),
        FAIRUSE_WORKER_ROCKSDB_BLOCK_CACHE_BYTES=str(8 * 1024 * 1024),
        FAIRUSE_WORKER_ROCKSDB_WRITE_BUFFER_BYTES=str(4 * 1024 * 1024),
        FAIRUSE_WORKER_BATCH_MAX="500",
        FAIRUSE_WORKER_MAX_POLL_RECORDS="200",
    ).start()  # creates its topics and stores
    wait_for(
        lambda: any(worker.workdir.rglob(f"tenants-{partition}.db")),
        300,
        "the worker's stores",
        explain=worker.log_tail,
    )
    worker.kill()
    produce_fast(kafka_settings, hoarded)
    leave_as_processed(kafka_settings, worker, hoarded, partition)
    del hoarded
    produce_fast(kafka_settings, fleet + tail)

    worker.preexec = limit_data
    worker.start()
    wait_for(
        lambda: caught_up(kafka_settings, worker.app_id) or not worker.alive(),
        1200,
        "the worker to commit every event",
        every_s=2,
        explain=lambda: lag(kafka_settings, worker.app_id) + worker.log_tail(),
    )
    assert worker.alive(), worker.log_tail()
    worker.kill()
    assert store_bytes(worker.workdir / "var") > DATA_LIMIT
    assert_exactly_as_replay(kafka_settings, expected)
