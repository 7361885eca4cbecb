"""Warehouse fixtures: a fresh store per test on each available backend.

``warehouse_dsn`` runs every test on the embedded chDB store (always) and on a ClickHouse server
when one is available: ``FAIRUSE_TEST_CLICKHOUSE_URL`` (``http://user:pass@host:8123``) or a
Docker engine for testcontainers. Without either, only the server variant is skipped, with its
reason; the chDB variant always runs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVER_URL_ENV = "FAIRUSE_TEST_CLICKHOUSE_URL"


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def clickhouse_server_url() -> Iterator[str]:
    """Base URL of a ClickHouse server for the session, or skip (with the reason)."""
    url = os.environ.get(SERVER_URL_ENV)
    if url:
        yield url.rstrip("/")
        return
    if not _docker_answers():
        pytest.skip(
            f"no ClickHouse server: set {SERVER_URL_ENV} or start Docker "
            "(the chDB variant of this test ran)"
        )
    from testcontainers.clickhouse import ClickHouseContainer

    with ClickHouseContainer("clickhouse/clickhouse-server:25.8") as container:
        host, port = container.get_container_host_ip(), container.get_exposed_port(8123)
        yield f"http://{container.username}:{container.password}@{host}:{port}"


@pytest.fixture(params=["chdb", "server"])
def warehouse_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """DSN of an empty store: chDB in ``tmp_path`` or a fresh database on the server."""
    if request.param == "chdb":
        yield f"chdb://{tmp_path / 'warehouse'}"
        return
    base = request.getfixturevalue("clickhouse_server_url")
    import clickhouse_connect

    database = f"fairuse_test_{uuid.uuid4().hex[:10]}"
    admin = clickhouse_connect.get_client(dsn=base)
    admin.command(f"CREATE DATABASE {database}")
    try:
        yield f"{base}/{database}"
    finally:
        admin.command(f"DROP DATABASE IF EXISTS {database}")
        admin.close()
