"""Fixtures of the streaming integration tests: simulated events and worker processes."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from portal_support import PortalMonth, portal_month
from stream_harness import FAIRUSE, REPO_ROOT, WorkerProcess

from fairuse.settings import KafkaSettings
from kafka_support import free_port

SIMULATION = ("--tenants", "6", "--duration", "35d", "--heartbeat-s", "7200", "--breakers", "0.5")


@pytest.fixture(scope="session")
def simulated_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A month of a small fleet (~45,000 events, faults included) from ``fairuse simulate``."""
    out = tmp_path_factory.mktemp("sim") / "events.ndjson"
    subprocess.run(
        [*FAIRUSE, "simulate", "--seed", "7", *SIMULATION, "--faults", "0.003", "--out", str(out)],
        check=True,
        capture_output=True,
        cwd=REPO_ROOT,
    )
    return out


@pytest.fixture
def workers(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """A factory of worker processes in one consumer group (own app id per test); all stopped
    at the end, their logs kept in the test's tmp dir."""
    app_id = f"w{uuid.uuid4().hex[:10]}"
    started: list[WorkerProcess] = []

    def make(**env: str) -> WorkerProcess:
        worker = WorkerProcess(kafka_settings, app_id, free_port(), tmp_path, dict(env))
        started.append(worker)
        return worker

    yield make
    for worker in started:
        worker.kill()


@pytest.fixture(scope="session")
def month_portal(
    kafka_bootstrap: str, simulated_events: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PortalMonth]:
    """The simulated month through broker, worker and sink, with ``fairuse portal`` in front."""
    with portal_month(kafka_bootstrap, simulated_events, tmp_path_factory.mktemp("portal")) as m:
        yield m
