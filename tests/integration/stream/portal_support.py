"""A simulated month through the real pipeline for the portal's tests: broker, worker, sink
into embedded chDB (kept running: it is the store owner), and ``fairuse portal`` in front."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from stream_harness import (
    FAIRUSE,
    REPO_ROOT,
    WorkerProcess,
    caught_up,
    consume_all,
    http_get,
    produce,
    read_lines,
    wait_for,
)

from fairuse.errors import FairUseError
from fairuse.events import Rejection, parse_event
from fairuse.portal.links import sign
from fairuse.settings import KafkaSettings
from fairuse.topics import create_topics
from fairuse.warehouse.owner import read_owner
from fairuse.warehouse.store import Reader
from kafka_support import free_port, scaled_s

API_TOKEN = "portal-test-admin"
SECRET = "portal-test-secret"


@dataclass
class PortalMonth:
    """The running pipeline and portal of one simulated month."""

    kafka: KafkaSettings
    worker: WorkerProcess
    store: Path  # the sink's FAIRUSE_DATA_DIR (the warehouse is its ``warehouse``)
    url: str
    tenants: list[str]
    portal_log: Path

    @property
    def dsn(self) -> str:
        return f"chdb://{(self.store / 'warehouse').resolve()}"

    def link(self, tenant: str, ttl_s: int = 3600) -> str:
        """A signed link prefix (``…/p/<token>``) for ``tenant`` (``*`` = admin)."""
        return f"{self.url}/p/{sign(SECRET, tenant, int(time.time()) + ttl_s)}"

    def api(self, path: str) -> Any:
        """The worker's answer to ``path`` with the admin token (fails unless 200)."""
        status, body = http_get(self.worker.web_port, path, API_TOKEN)
        assert status == 200, (path, status, body)
        return body

    def query(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Rows of a read-only query on the warehouse (through the sink, its owner)."""
        with Reader(self.dsn) as reader:
            return reader.query(sql, params).dicts()


def _env(kafka: KafkaSettings, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "FAIRUSE_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "FAIRUSE_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "FAIRUSE_KAFKA_EVENTS_PARTITIONS": str(kafka.events_partitions),
        "FAIRUSE_DATA_DIR": str(data_dir),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    env.pop("FAIRUSE_WAREHOUSE_DSN", None)
    return env


@contextmanager
def _process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*FAIRUSE, *argv], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=scaled_s(30))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _valid_lines(events: Path) -> list[bytes]:
    """The simulated events that pass the contract (the garbage faults are left out, so every
    record on the events topic decodes)."""
    return [line for line in read_lines(events) if not isinstance(parse_event(line), Rejection)]


def fetch(url: str, form: dict[str, str | list[str]] | None = None) -> tuple[int, str]:
    """GET ``url`` (or POST ``form`` to it, url-encoded); status and body, redirects followed."""
    data = urllib.parse.urlencode(form, doseq=True).encode() if form is not None else None
    try:
        with urllib.request.urlopen(url, data=data, timeout=scaled_s(30)) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def portal_month(kafka_bootstrap: str, events: Path, tmp: Path) -> Iterator[PortalMonth]:
    """Run the month through worker and sink, then start the portal; stop all at the end."""
    kafka = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=f"p{uuid.uuid4().hex[:10]}.")
    create_topics(kafka)
    lines = _valid_lines(events)
    store = tmp / "store"
    worker = WorkerProcess(kafka, f"w{uuid.uuid4().hex[:10]}", free_port(), tmp,
                           {"FAIRUSE_API_TOKEN": API_TOKEN})  # fmt: skip
    with ExitStack() as stack:
        worker.start()
        stack.callback(worker.stop)
        produce(kafka, lines)
        wait_for(
            lambda: caught_up(kafka, worker.app_id), 300, "the worker", explain=worker.log_tail
        )
        sink_env = _env(kafka, store, FAIRUSE_SINK_WEB_PORT="0", FAIRUSE_SINK_BATCH_MS="200")
        stack.enter_context(
            _process(["sink", "--group", f"sink-{kafka.topic_prefix}"], sink_env, tmp / "sink.log")
        )
        # the sink holds the store and serves queries: never open it from here before that
        wait_for(lambda: read_owner(store / "warehouse"), 120, "the sink's query service")
        ids = {orjson.loads(line)["event_id"] for line in lines}
        month = PortalMonth(kafka, worker, store, "", [], tmp / "portal.log")

        def stored() -> bool:
            # the worker's expiry timer may still close idle sessions: compare with the topics now
            outputs = consume_all(kafka, ["usage", "violations", "enforcement"])
            try:
                (counts,) = month.query(
                    "SELECT (SELECT count() FROM usage FINAL) AS usage,"
                    " (SELECT count() FROM violations FINAL) AS violations,"
                    " (SELECT count() FROM enforcement FINAL) AS enforcement,"
                    " (SELECT uniqExact(event_id) FROM events) AS events",
                    {},
                )
            except FairUseError:
                return False
            expected = {name: len(records) for name, records in outputs.items()}
            return counts == {**expected, "events": len(ids)}

        wait_for(stored, 300, "the sink to store the month", every_s=2)
        port = free_port()
        portal_env = _env(
            kafka, store,
            FAIRUSE_PORTAL_SECRET=SECRET,
            FAIRUSE_PORTAL_WORKER_URL=f"http://127.0.0.1:{worker.web_port}",
            FAIRUSE_API_TOKEN=API_TOKEN,
        )  # fmt: skip
        stack.enter_context(_process(["portal", "--port", str(port)], portal_env, month.portal_log))
        month.url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{month.url}/healthz"), 60, "the portal")
        month.tenants = sorted({orjson.loads(line)["tenant_id"] for line in lines})
        yield month
