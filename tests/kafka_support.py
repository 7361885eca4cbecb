"""Kafka broker helpers for tests: the deploy/kafka scripts, free ports, the container path.

Imported by tests/conftest.py (fixtures) and by tests that drive their own broker. A module of its
own because ``conftest`` is not importable by name: several directories have one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from fairuse.errors import BrokerError
from fairuse.kafka import check_broker
from fairuse.settings import KafkaSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_SCRIPTS = REPO_ROOT / "deploy" / "kafka"


TIMEOUT_SCALE_ENV = "FAIRUSE_TEST_TIMEOUT_SCALE"


def scaled_s(seconds: float) -> float:
    """A test deadline: ``seconds`` (enough on an idle machine) times ``FAIRUSE_TEST_TIMEOUT_SCALE``
    (default 3, for a machine whose cores are busy with other work). A deadline only bounds how
    long a broken test hangs; a passing test ends as soon as its condition holds."""
    return seconds * float(os.environ.get(TIMEOUT_SCALE_ENV) or 3)


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


def wait_for_broker(bootstrap: str, deadline_s: float) -> bool:
    """Poll ``bootstrap`` with metadata requests until one succeeds (True) or the deadline."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if broker_answers(bootstrap, timeout_s=min(5.0, max(0.5, deadline - time.monotonic()))):
            return True
        time.sleep(0.5)
    return False


def free_port(count: int = 1) -> int:
    """A port ``p`` on 127.0.0.1 with ``p`` .. ``p + count - 1`` unused, outside the kernel's
    ephemeral range, so no outgoing connection can take it before it is bound: the rule of the
    broker scripts (``kafka_free_port`` in deploy/kafka/common.sh), for every port a test picks."""
    picked = subprocess.run(
        ["bash", "-c", f'source "{KAFKA_SCRIPTS}/common.sh" && kafka_free_port {count}'],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if picked.returncode != 0:
        raise RuntimeError(f"no free port: {picked.stderr.strip()}")
    return int(picked.stdout)


def free_port_pair() -> int:
    """A port ``p`` such that ``p`` and ``p + 1`` are both free (broker + controller)."""
    return free_port(2)


class BrokerScripts:
    """The ``deploy/kafka`` scripts for one broker on ``port`` (controller ``port + 1``)."""

    def __init__(self, port: int, data_dir: Path) -> None:
        self.port = port
        self.data_dir = data_dir
        self.bootstrap = f"127.0.0.1:{port}"
        self.env = dict(os.environ)
        self.env.update(
            KAFKA_PORT=str(port),
            KAFKA_CONTROLLER_PORT=str(port + 1),
            KAFKA_DATA_DIR=str(data_dir),
            KAFKA_STATUS_TIMEOUT_S=str(round(scaled_s(40))),  # a healthy broker on a busy machine
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


def docker_answers() -> bool:
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


def container_broker() -> Iterator[str]:
    # testcontainers' KafkaContainer drives the Confluent image's boot scripts, which the
    # official apache/kafka image does not have; so run that image directly in KRaft mode.
    from testcontainers.core.container import DockerContainer

    port = free_port_pair()
    container = DockerContainer(f"apache/kafka:{kafka_version()}").with_bind_ports(9092, port)
    for key, value in container_env(port).items():
        container.with_env(key, value)
    with container:
        bootstrap = f"127.0.0.1:{port}"
        if not wait_for_broker(bootstrap, deadline_s=120):
            raise RuntimeError(f"apache/kafka container did not answer on {bootstrap}")
        yield bootstrap


def local_broker(data_dir: Path) -> Iterator[str]:
    scripts = BrokerScripts(free_port_pair(), data_dir)
    started = scripts.run("start")
    if started.returncode != 0:
        raise RuntimeError(f"deploy/kafka/start.sh failed:\n{started.stderr}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        scripts.run("stop")
