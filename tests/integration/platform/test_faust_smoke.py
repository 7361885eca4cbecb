"""faust-streaming 0.15.3 + aiokafka against our broker version: an agent with a changelog Table
under ``exactly_once`` (transactional producers, read_committed output and recovery), the mode
the worker configures Faust in for its reading side (docs/streaming.md, "Delivery"). The worker
no longer runs Faust ``at_least_once``, whose restart recovery intermittently never resumed a
partition here (faust #651/#176), so that mode is not checked.

The worker runs as a subprocess (tests/integration/platform/faust_smoke_app.py). Its counts must
survive a worker restart, which needs Faust's changelog topic creation, consumer-group
coordination, producing, and table recovery to work against this Kafka.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from fairuse.kafka import client_kwargs
from fairuse.settings import KafkaSettings
from fairuse.topics import describe_topics
from kafka_support import free_port, scaled_s

APP = Path(__file__).with_name("faust_smoke_app.py")
PARTITIONS = 2
DEADLINE_S = scaled_s(90)  # for the expected output, and for a clean worker shutdown


class SmokeApp:
    """Names, topics and worker processes of one smoke-test Faust app."""

    def __init__(self, bootstrap: str, workdir: Path, guarantee: str) -> None:
        run_id = uuid.uuid4().hex[:10]
        self.settings = KafkaSettings(bootstrap=bootstrap)
        self.app_id = f"smoke-{run_id}"
        self.source = f"smoke-{run_id}-in"
        self.sink = f"smoke-{run_id}-out"
        self.workdir = workdir
        self.guarantee = guarantee
        self.worker: subprocess.Popen[bytes] | None = None
        self.log = workdir / "worker.log"

    def create_topics(self) -> None:
        async def create() -> None:
            admin = AIOKafkaAdminClient(**client_kwargs(self.settings))
            await admin.start()
            try:
                await admin.create_topics(
                    [NewTopic(name, PARTITIONS, 1) for name in (self.source, self.sink)]
                )
            finally:
                await admin.close()

        asyncio.run(create())

    def start_worker(self) -> None:
        env = dict(
            os.environ,
            SMOKE_BOOTSTRAP=self.settings.bootstrap,
            SMOKE_APP_ID=self.app_id,
            SMOKE_IN=self.source,
            SMOKE_OUT=self.sink,
            SMOKE_PARTITIONS=str(PARTITIONS),
            SMOKE_GUARANTEE=self.guarantee,
        )
        with self.log.open("ab") as log:
            self.worker = subprocess.Popen(
                # Faust's worker binds its web port even with the web off: a free one, not 6066
                [
                    sys.executable,
                    str(APP),
                    "worker",
                    "--loglevel=warn",
                    f"--web-port={free_port()}",
                ],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop_worker(self) -> int:
        assert self.worker is not None
        self.worker.send_signal(signal.SIGTERM)
        try:
            return self.worker.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            return self.worker.wait()
        finally:
            self.worker = None

    def produce(self, keys: list[bytes]) -> None:
        async def produce() -> None:
            producer = AIOKafkaProducer(acks="all", **client_kwargs(self.settings))
            await producer.start()
            try:
                for key in keys:
                    await producer.send_and_wait(self.source, b"x", key=key)
            finally:
                await producer.stop()

        asyncio.run(produce())

    def await_output(self, expected: set[bytes]) -> set[bytes]:
        """Read the sink from the start until every ``expected`` value was seen (or deadline)."""

        async def consume() -> set[bytes]:
            seen: set[bytes] = set()
            consumer = AIOKafkaConsumer(
                self.sink,
                auto_offset_reset="earliest",
                isolation_level="read_committed",  # exactly_once output counts once committed
                **client_kwargs(self.settings),
            )
            await consumer.start()
            try:
                deadline = time.monotonic() + DEADLINE_S
                while not expected <= seen and time.monotonic() < deadline:
                    if self.worker is not None and self.worker.poll() is not None:
                        break
                    batches = await consumer.getmany(timeout_ms=500)
                    seen.update(r.value for records in batches.values() for r in records)
            finally:
                await consumer.stop()
            return seen

        return asyncio.run(consume())

    def worker_log(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture(params=["exactly_once"])
def smoke_app(
    kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[SmokeApp]:
    app = SmokeApp(kafka_bootstrap, tmp_path, request.param)
    app.create_topics()
    yield app
    if app.worker is not None:
        app.stop_worker()


def test_agent_with_changelog_table_survives_a_worker_restart(smoke_app: SmokeApp) -> None:
    smoke_app.start_worker()
    smoke_app.produce([b"a", b"b", b"a", b"b", b"a"])

    first = smoke_app.await_output({b"a:3", b"b:2"})
    assert first >= {b"a:3", b"b:2"}, smoke_app.worker_log()
    assert smoke_app.stop_worker() == 0, smoke_app.worker_log()

    changelog = f"{smoke_app.app_id}-counts-changelog"
    assert describe_topics(smoke_app.settings, [changelog]) == {changelog: PARTITIONS}

    smoke_app.start_worker()
    smoke_app.produce([b"a", b"b"])

    second = smoke_app.await_output({b"a:4", b"b:3"})
    assert second >= {b"a:4", b"b:3"}, smoke_app.worker_log()
    assert b"a:1" not in second - first, "the table restarted empty instead of recovering"
    assert smoke_app.stop_worker() == 0, smoke_app.worker_log()
