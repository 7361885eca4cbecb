"""A worker and a sink scraped by a real Prometheus while a simulated day goes through them.

Checks what an operator relies on: ``/readyz`` is 503 before the worker has its partitions and
200 after; the events counter equals the events produced; the lag gauge reaches 0; every PromQL
expression of the Operations dashboard (worker and sink panels) returns series from the live
processes; the alert rules load into the server. A live notifier delivering a notice is scraped
the same way: every notifier metric a panel or an alert rule names exists on it, and every
notifier panel returns series. Needs Debian's ``prometheus`` package.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from stream_harness import (
    FAIRUSE,
    REPO_ROOT,
    WorkerProcess,
    http_get,
    produce,
    read_lines,
    wait_for,
)

from fairuse.records import Violation
from fairuse.settings import KafkaSettings
from kafka_support import free_port

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="the prometheus binary is missing (Debian package prometheus; .ci/run installs it)",
)
OPERATIONS = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "operations.json"
ALERTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
DAY = ("--seed", "5", "--tenants", "6", "--duration", "1d", "--heartbeat-s", "600")


class Prometheus:
    """A Prometheus server on a free port, scraping ``targets`` (job -> host:port) every second."""

    def __init__(self, workdir: Path, targets: dict[str, str]) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target]}]}
                for job, target in targets.items()
            ],
        }
        path = workdir / "prometheus.yml"
        path.write_text(json.dumps(config))  # JSON is YAML
        self.log = (workdir / "prometheus.log").open("wb")
        assert PROMETHEUS is not None
        self.process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={path}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def ready(self) -> bool:
        """True once the server answers /-/ready."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of ``expr`` now."""
        return self.api("query", query=expr)["result"]

    def value(self, expr: str) -> float | None:
        """The single value of ``expr`` now (None if no series)."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Prometheus]]:
    started: list[Prometheus] = []

    def make(targets: dict[str, str]) -> Prometheus:
        server = Prometheus(tmp_path, targets)
        started.append(server)
        wait_for(server.ready, 120, "Prometheus to start", every_s=0.5)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def sink_process(kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """``fairuse sink`` into a fresh embedded store, with its probe port."""
    port = free_port()
    env = {
        **os.environ,
        "FAIRUSE_KAFKA_BOOTSTRAP": kafka_settings.bootstrap,
        "FAIRUSE_KAFKA_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "FAIRUSE_DATA_DIR": str(tmp_path / "sink"),
        "FAIRUSE_SINK_WEB_PORT": str(port),
        "FAIRUSE_SINK_BATCH_MS": "200",
        "FAIRUSE_METRICS_LAG_INTERVAL_S": "1",
    }
    env.pop("FAIRUSE_WAREHOUSE_DSN", None)
    log_path = tmp_path / "sink.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*FAIRUSE, "sink", "--group", f"sink-{tmp_path.name}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
    yield port, log_path
    process.terminate()
    process.wait(timeout=60)


@pytest.fixture
def webhook_url() -> Iterator[str]:
    """A webhook endpoint on loopback that accepts every delivery (204)."""

    class Accept(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def _dashboard_exprs() -> list[str]:
    board = json.loads(OPERATIONS.read_text(encoding="utf-8"))
    return [
        target["expr"].replace("$__rate_interval", "1m")
        for panel in board["panels"]
        for target in panel.get("targets", [])
        if target["datasource"]["type"] == "prometheus"
    ]


def _first_readiness(worker: WorkerProcess) -> tuple[int, Any]:
    """The first answer of the worker's /readyz, polled from the moment it starts."""
    return wait_for(
        lambda: (answer := http_get(worker.web_port, "/readyz"))[0] and answer,
        120,
        "the worker's web server",
        every_s=0.05,
        explain=worker.log_tail,
    )


def test_a_simulated_day_through_worker_and_sink_scraped_by_prometheus(
    kafka_settings: KafkaSettings,
    tmp_path: Path,
    workers: Callable[..., WorkerProcess],
    sink_process: tuple[int, Path],
    prometheus_factory: Callable[[dict[str, str]], Prometheus],
) -> None:
    day = tmp_path / "day.ndjson"
    subprocess.run([*FAIRUSE, "simulate", *DAY, "--out", str(day)], check=True, cwd=REPO_ROOT)
    payloads = read_lines(day)

    worker = workers(FAIRUSE_METRICS_LAG_INTERVAL_S="1").start()
    status, body = _first_readiness(worker)
    assert status == 503, body
    assert body["conditions"]["partitions_assigned"] is False, body
    wait_for(
        lambda: http_get(worker.web_port, "/readyz")[0] == 200, 120, "/readyz 200", every_s=0.5
    )
    assert http_get(worker.web_port, "/healthz") == (200, {"alive": True})

    sink_port, sink_log = sink_process
    wait_for(
        lambda: http_get(sink_port, "/readyz")[0] == 200,
        120,
        "the sink's /readyz",
        explain=lambda: sink_log.read_text(errors="replace")[-2000:],
    )
    prometheus = prometheus_factory(
        {"fairuse-worker": f"127.0.0.1:{worker.web_port}", "fairuse-sink": f"127.0.0.1:{sink_port}"}
    )
    wait_for(
        lambda: prometheus.query('up{job=~"fairuse-.*"} == 1').__len__() == 2,
        120,
        "both targets up in Prometheus",
        every_s=0.5,
    )
    rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
    assert len(rules) >= 8 and all(rule["health"] != "err" for rule in rules), rules

    produced = produce(kafka_settings, payloads)
    assert produced == len(payloads)
    wait_for(
        lambda: prometheus.value("sum(fairuse_worker_events_total)") == produced,
        240,
        f"fairuse_worker_events_total == {produced} in Prometheus",
        every_s=1,
        explain=lambda: f"(now {prometheus.value('sum(fairuse_worker_events_total)')})",
    )
    wait_for(
        lambda: prometheus.value("sum(fairuse_worker_consumer_lag_messages)") == 0,
        120,
        "the worker's lag gauge at 0",
        every_s=1,
    )
    assert len(prometheus.query("fairuse_worker_consumer_lag_messages")) == 8  # one per partition
    wait_for(
        lambda: (
            prometheus.value('sum(fairuse_sink_messages_committed_total{topic="events"})')
            == produced
        ),
        240,
        "the sink's committed events",
        every_s=1,
    )
    wait_for(
        lambda: prometheus.value("sum(fairuse_sink_commit_lag_messages)") == 0,
        120,
        "the sink's commit lag at 0",
        every_s=1,
    )
    assert http_get(worker.web_port, "/readyz")[0] == 200

    exprs = [e for e in _dashboard_exprs() if "fairuse_notify_" not in e]  # no notifier here
    assert len(exprs) >= 20
    empty = [expr for expr in exprs if not prometheus.query(expr)]
    assert not empty, f"dashboard expressions without series: {empty}"


def _notifier_metric_names() -> set[str]:
    """The notifier's metrics named by the Operations dashboard and the alert rules."""
    text = OPERATIONS.read_text(encoding="utf-8") + ALERTS.read_text(encoding="utf-8")
    return set(re.findall(r"\bfairuse_notify_\w+", text))


def test_notifier_panels_and_alerts_name_metrics_of_a_live_notifier(
    kafka_settings: KafkaSettings,
    tmp_path: Path,
    webhook_url: str,
    prometheus_factory: Callable[[dict[str, str]], Prometheus],
) -> None:
    subscriptions = tmp_path / "subscriptions.toml"
    subscriptions.write_text(
        f'[[subscription]]\nname = "ops"\ntenant = "acme"\nkinds = ["*"]\n'
        f'webhook = {{ url = "{webhook_url}", secret = "whsec_{"A" * 44}" }}\n'
    )
    port = free_port()
    env = {
        **os.environ,
        "FAIRUSE_KAFKA_BOOTSTRAP": kafka_settings.bootstrap,
        "FAIRUSE_KAFKA_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "FAIRUSE_NOTIFY_SUBSCRIPTIONS": str(subscriptions),
        "FAIRUSE_NOTIFY_GROUP_ID": f"notify-{tmp_path.name}",
        "FAIRUSE_NOTIFY_WEB_PORT": str(port),
    }
    log_path = tmp_path / "notifier.log"
    with log_path.open("wb") as log:
        notifier = subprocess.Popen(
            [*FAIRUSE, "notify"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
        )
    try:
        wait_for(
            lambda: http_get(port, "/readyz")[0] == 200,
            120,
            "the notifier's /readyz",
            explain=lambda: log_path.read_text(errors="replace")[-2000:],
        )
        prometheus = prometheus_factory({"fairuse-notifier": f"127.0.0.1:{port}"})
        record = Violation(
            violation_id="acme-ops-v1", tenant_id="acme", metric="api_calls",
            period="2026-11-02", status="exceeded", observed=2500, limit=2400, unit="calls",
            seats=3, policy_revision="2021-01-12", ts=1_793_577_600_000,
        )  # fmt: skip
        produce(kafka_settings, [record.to_json()], topic="violations")
        delivered = 'sum(fairuse_notify_attempts_total{outcome="delivered"})'
        wait_for(
            lambda: (prometheus.value(delivered) or 0) >= 1,
            240,
            "a delivered notice counted in Prometheus",
            every_s=1,
            explain=lambda: log_path.read_text(errors="replace")[-2000:],
        )
        names = _notifier_metric_names()
        assert len(names) >= 3, names
        scraped = {
            series["__name__"]
            for series in prometheus.api("series", **{"match[]": '{job="fairuse-notifier"}'})
        }
        assert names <= scraped, (
            f"named by panels or alerts, missing on the notifier: {names - scraped}"
        )
        exprs = [e for e in _dashboard_exprs() if "fairuse_notify_" in e]
        assert len(exprs) >= 3, exprs
        # rate() and increase() need two scrapes of a series inside their window.
        wait_for(
            lambda: all(prometheus.query(expr) for expr in exprs),
            120,
            "series for every notifier panel",
            every_s=1,
            explain=lambda: f"(without series: {[e for e in exprs if not prometheus.query(e)]})",
        )
    finally:
        notifier.terminate()
        notifier.wait(timeout=60)
