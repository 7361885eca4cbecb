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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: needs a real Kafka broker (and chDB); see tests/conftest.py"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)
