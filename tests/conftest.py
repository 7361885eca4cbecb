"""Shared pytest fixtures: a real Kafka broker for integration tests.

``kafka_bootstrap`` (session) is a running broker's ``host:port``, found in this order:
1. the broker named by ``FAIRUSE_KAFKA_BOOTSTRAP`` if it answers a metadata request
   (``make test`` starts one and sets it);
2. a container of the official ``apache/kafka`` image in KRaft mode if a Docker engine answers;
3. else the local broker of ``deploy/kafka/`` on free ports with a temporary data dir, stopped at
   the end of the session.

``kafka_settings`` (function) is a :class:`KafkaSettings` for that broker with a unique topic
prefix and the pipeline's topics created, so tests never see each other's records.

Every test under ``tests/integration/`` is marked ``integration`` automatically, so
``pytest -m "not integration"`` runs the unit tests alone.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from fairuse.errors import BrokerError
from fairuse.kafka import check_broker
from fairuse.settings import KafkaSettings
from fairuse.topics import create_topics

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_SCRIPTS = REPO_ROOT / "deploy" / "kafka"
INTEGRATION_DIR = REPO_ROOT / "tests" / "integration"


def kafka_version() -> str:
    """The pinned Kafka version of ``deploy/kafka/common.sh`` (the same for the container)."""
    for line in (KAFKA_SCRIPTS / "common.sh").read_text().splitlines():
        if line.startswith("KAFKA_VERSION="):
            return line.split(":-", 1)[1].split("}", 1)[0]
    raise RuntimeError("KAFKA_VERSION not found in deploy/kafka/common.sh")


def broker_answers(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """True if a metadata request to ``bootstrap`` succeeds within ``timeout_s``."""
    try:
        asyncio.run(check_broker(KafkaSettings(bootstrap=bootstrap), timeout_s))
    except BrokerError:
        return False
    return True


def free_port_pair() -> int:
    """A port ``p`` on 127.0.0.1 such that ``p`` and ``p + 1`` are both free right now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports on 127.0.0.1")


class BrokerScripts:
    """The ``deploy/kafka`` scripts for one broker on ``port`` (controller ``port + 1``)."""

    def __init__(self, port: int, data_dir: Path) -> None:
        self.port = port
        self.data_dir = data_dir
        self.bootstrap = f"127.0.0.1:{port}"
        self.env = dict(os.environ)
        self.env.update(
            KAFKA_PORT=str(port), KAFKA_CONTROLLER_PORT=str(port + 1), KAFKA_DATA_DIR=str(data_dir)
        )

    def run(self, name: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
        """Run ``deploy/kafka/<name>.sh``; return its result whatever its exit status."""
        return subprocess.run(
            [str(KAFKA_SCRIPTS / f"{name}.sh")],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


# Set per container, not taken from the template: addresses inside the container; the image's
# own default log.dirs (under /tmp, writable by its user) is kept.
_CONTAINER_OWN_SETTINGS = {
    "listeners",
    "advertised.listeners",
    "controller.quorum.voters",
    "log.dirs",
}


def container_env(host_port: int) -> dict[str, str]:
    """Environment for the official ``apache/kafka`` image: the settings of
    ``deploy/kafka/server.properties.template`` (the image maps ``KAFKA_FOO_BAR`` to
    ``foo.bar``), with the client port published on 127.0.0.1:``host_port``."""
    env = {
        "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{host_port}",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
    }
    for line in (KAFKA_SCRIPTS / "server.properties.template").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if key not in _CONTAINER_OWN_SETTINGS:
            name = key.upper().replace("_", "__").replace("-", "___").replace(".", "_")
            env[f"KAFKA_{name}"] = value
    return env


def _container_broker() -> Iterator[str]:
    # testcontainers' KafkaContainer drives the Confluent image's boot scripts, which the
    # official apache/kafka image does not have; so run that image directly in KRaft mode.
    from testcontainers.core.container import DockerContainer

    port = free_port_pair()
    container = DockerContainer(f"apache/kafka:{kafka_version()}").with_bind_ports(9092, port)
    for key, value in container_env(port).items():
        container.with_env(key, value)
    with container:
        bootstrap = f"127.0.0.1:{port}"
        if not broker_answers(bootstrap, timeout_s=90):
            raise RuntimeError(f"apache/kafka container did not answer on {bootstrap}")
        yield bootstrap


def _local_broker(data_dir: Path) -> Iterator[str]:
    scripts = BrokerScripts(free_port_pair(), data_dir)
    started = scripts.run("start")
    if started.returncode != 0:
        raise RuntimeError(f"deploy/kafka/start.sh failed:\n{started.stderr}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        scripts.run("stop")


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
    if _docker_answers():
        yield from _container_broker()
    else:
        yield from _local_broker(tmp_path_factory.mktemp("kafka"))


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
