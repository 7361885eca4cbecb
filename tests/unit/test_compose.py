"""docker-compose.yml and Dockerfile agree with the code: services, images, health checks, env."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from fairuse import settings as settings_module
from fairuse.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_SERVICES = ("topics", "worker", "sink", "simulator", "notify", "ingest", "portal")


def kafka_version() -> str:
    text = (ROOT / "deploy" / "kafka" / "common.sh").read_text()
    match = re.search(r'^KAFKA_VERSION="\$\{KAFKA_VERSION:-([0-9.]+)\}"', text, re.M)
    assert match, "KAFKA_VERSION not pinned in deploy/kafka/common.sh"
    return match.group(1)


def env_names_read_by_code() -> set[str]:
    """FAIRUSE_* names the code reads: the settings' env tables plus every literal lookup
    (``env.get("...")``, ``env["..."]``, ``os.environ.get(...)``, ``*_ENV = "..."``) in src."""
    names: set[str] = set()
    for table in (
        "_KAFKA_ENV",
        "_WORKER_ENV",
        "_WAREHOUSE_ENV",
        "_NOTIFY_ENV",
        "_OPS_ENV",
        "_INGEST_ENV",
        "_PORTAL_ENV",
    ):
        names |= set(getattr(settings_module, table, {}).values())
    lookup = re.compile(
        r'(?:environ|env)(?:\.get\(|\[)\s*"(FAIRUSE_\w+)"|_ENV\s*=\s*"(FAIRUSE_\w+)"'
    )
    for path in (ROOT / "src" / "fairuse").rglob("*.py"):
        for found in lookup.findall(path.read_text()):
            names |= {name for name in found if name}
    return names


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def test_the_pipeline_services_are_all_there() -> None:
    assert {"kafka", "clickhouse", *APP_SERVICES} <= set(SERVICES)


def test_images_are_the_official_ones_pinned() -> None:
    assert SERVICES["kafka"]["image"] == f"apache/kafka:{kafka_version()}"
    image, _, tag = SERVICES["clickhouse"]["image"].partition(":")
    assert image == "clickhouse/clickhouse-server"
    assert re.fullmatch(r"\d+\.\d+(\.\d+)*", tag), "pin a ClickHouse version, not latest"
    for name in APP_SERVICES:
        assert SERVICES[name]["build"] == "."


def test_kafka_runs_kraft_with_one_replica_and_append_time() -> None:
    env = environment("kafka")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])  # the image formats with it
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "PLAINTEXT://kafka:9092" in advertised  # in-network
    assert "HOST://localhost:19092" in advertised  # from the host
    assert "19092:19092" in SERVICES["kafka"]["ports"]
    for key, value in env.items():
        if "REPLICATION_FACTOR" in key or key.endswith("MIN_ISR"):
            assert value == "1", key
    assert env["KAFKA_LOG_MESSAGE_TIMESTAMP_TYPE"] == "LogAppendTime"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert any(v.endswith(":" + env["KAFKA_LOG_DIRS"]) for v in SERVICES["kafka"]["volumes"])


def health_command(service: str) -> str:
    test = SERVICES[service]["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def test_kafka_and_clickhouse_have_real_health_checks() -> None:
    assert re.search(
        r"/opt/kafka/bin/kafka-(broker-api-versions|topics)\.sh .*--bootstrap-server",
        health_command("kafka"),
    )
    assert re.search(
        r"localhost:8123/ping|clickhouse-client .*SELECT 1", health_command("clickhouse")
    )
    for service in ("kafka", "clickhouse"):
        check = SERVICES[service]["healthcheck"]
        assert check["retries"] >= 3 and "interval" in check


def test_clickhouse_ports_volume_limits_and_credentials_match_the_dsn() -> None:
    service = SERVICES["clickhouse"]
    assert {"8123:8123", "9000:9000"} <= set(service["ports"])
    assert any(v.endswith(":/var/lib/clickhouse") for v in service["volumes"])
    assert service["ulimits"]["nofile"]["soft"] >= 262144
    env = environment("clickhouse")
    dsn = urlsplit(environment("sink")["FAIRUSE_WAREHOUSE_DSN"])
    assert (dsn.scheme, dsn.hostname, dsn.port) == ("http", "clickhouse", 8123)
    assert (dsn.username, dsn.password) == (env["CLICKHOUSE_USER"], env["CLICKHOUSE_PASSWORD"])
    assert dsn.path == "/" + env["CLICKHOUSE_DB"]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_reach_kafka_in_network(service: str) -> None:
    assert environment(service)["FAIRUSE_KAFKA_BOOTSTRAP"] == "kafka:9092"


def test_every_fairuse_variable_set_in_compose_is_one_the_code_reads() -> None:
    known = env_names_read_by_code()
    assert "FAIRUSE_KAFKA_BOOTSTRAP" in known and "FAIRUSE_WAREHOUSE_DSN" in known
    for name in SERVICES:
        unknown = {k for k in environment(name) if k.startswith("FAIRUSE_")} - known
        assert not unknown, f"{name} sets variables no code reads: {sorted(unknown)}"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_service_commands_are_valid_cli_invocations(service: str) -> None:
    command = SERVICES[service]["command"]
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    args = build_parser().parse_args(argv)  # exits (fails the test) on an unknown command
    assert callable(args.func)


def test_dependencies_wait_for_health_and_for_the_topics() -> None:
    for name in APP_SERVICES:
        depends = SERVICES[name]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy"
        if name != "topics":
            assert depends["topics"]["condition"] == "service_completed_successfully"
    assert SERVICES["sink"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"


def test_named_volumes_are_declared() -> None:
    used = {
        volume.split(":", 1)[0]
        for service in SERVICES.values()
        for volume in service.get("volumes", [])
        if not volume.startswith((".", "/"))
    }
    assert used <= set(COMPOSE["volumes"])


def test_dockerfile_installs_the_package_on_python_311_slim() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert re.search(r"^RUN pip install \.", dockerfile, re.M)
    assert 'ENTRYPOINT ["fairuse"]' in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv"} <= set(ignored)
