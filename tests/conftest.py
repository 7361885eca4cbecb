"""Shared pytest fixtures: a real Kafka broker for integration tests.

``kafka_bootstrap`` (session) is a running broker's ``host:port``, found in this order:
1. the broker named by ``FAIRUSE_KAFKA_BOOTSTRAP`` if it answers a metadata request
   (``make test`` starts one and sets it);
2. a container of the official ``apache/kafka`` image in KRaft mode if a Docker engine answers;
3. else the local broker of ``deploy/kafka/`` on free ports with a temporary data dir, stopped at
   the end of the session.

``kafka_settings`` (function) is a :class:`KafkaSettings` for that broker with a unique topic
prefix and the pipeline's topics created, so tests never see each other's records.
``free_port`` and ``broker_scripts`` serve tests needing a private broker (tests/kafka_support.py).

Under ``deploy/test.sh`` (``FAIRUSE_TEST_RUN_DIR`` set) the ids of failing tests are appended to
``<run dir>/failed-tests.txt`` for the script's closing summary, and each failure's report to
``<run dir>/failures.txt`` as it happens (so a run cut short still says why); the script also
keeps the ``tmp_path`` of failed tests (with the log of each process they started).
Each phase's report is kept on the test item (``request.node.rep_call``), so a fixture's
teardown can tell whether its test failed (the browser test then saves the page it was on).
Hypothesis runs without its per-example deadline: property tests judge answers, not speed.

Every test under ``tests/integration/`` is marked ``integration`` automatically, so
``pytest -m "not integration"`` runs the unit tests alone.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from fairuse.settings import KafkaSettings
from fairuse.topics import create_topics
from kafka_support import (
    BrokerScripts,
    broker_answers,
    container_broker,
    docker_answers,
    free_port_pair,
    local_broker,
)

INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"
RUN_DIR_ENV = "FAIRUSE_TEST_RUN_DIR"

# Property tests judge answers, not speed: on a busy machine one example may take seconds, which
# Hypothesis would otherwise report as a failure (its 200 ms deadline, its too-slow health check).
settings.register_profile(
    "busy-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("busy-machine")


def _run_dir() -> Path | None:
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a running Kafka broker for this test session."""
    named = os.environ.get("FAIRUSE_KAFKA_BOOTSTRAP")
    if named and broker_answers(named):
        yield named
        return
    if named:
        warnings.warn(
            f"FAIRUSE_KAFKA_BOOTSTRAP={named} does not answer; using another broker", stacklevel=1
        )
    if docker_answers():
        yield from container_broker()
    else:
        yield from local_broker(tmp_path_factory.mktemp("kafka"))


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Settings for the session broker with a unique topic prefix; the topics exist."""
    settings = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:12]}.")
    create_topics(settings)
    return settings


@pytest.fixture
def free_port() -> int:
    """A free port on 127.0.0.1 whose successor is free too (broker + controller)."""
    return free_port_pair()


@pytest.fixture
def broker_scripts(tmp_path: Path, free_port: int) -> Iterator[BrokerScripts]:
    """The broker scripts for a private broker (own ports, own data dir); stopped afterwards."""
    scripts = BrokerScripts(free_port, tmp_path / "kafka")
    yield scripts
    scripts.run("stop")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _record_failure(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _record_failure(report)


def _record_failure(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Append a failing test's (or module's) id and report to the run's lists (deploy/test.sh)."""
    run_dir = _run_dir()
    if report.failed and run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        name = report.nodeid or str(report.fspath)
        with (run_dir / "failed-tests.txt").open("a") as failed:
            failed.write(f"{name}\n")
        with (run_dir / "failures.txt").open("a") as reports:
            reports.write(f"===== {name} ({report.when})\n")
            reports.write(f"{report.longreprtext}\n\n")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """Keep each phase's report on the item (``item.rep_setup``, ``item.rep_call``), as pytest's
    docs show, so a fixture's teardown can tell whether its test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: needs a real Kafka broker (and chDB); see tests/conftest.py"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)
