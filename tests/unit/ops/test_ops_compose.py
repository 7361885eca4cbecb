"""docker-compose's Prometheus and Grafana: official pinned images, mounted files that exist,
scrape targets that are the services' metrics ports, dashboards on provisioned data sources."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
SERVICES = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"


def test_prometheus_and_grafana_are_the_official_images_pinned() -> None:
    for service, image in (("prometheus", "prom/prometheus"), ("grafana", "grafana/grafana")):
        name, _, tag = SERVICES[service]["image"].partition(":")
        assert name == image and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), SERVICES[service]
    plugins = SERVICES["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    assert "grafana-clickhouse-datasource" in plugins


def test_every_mounted_file_exists() -> None:
    for service in ("prometheus", "grafana"):
        for volume in SERVICES[service]["volumes"]:
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume


def test_prometheus_scrapes_the_ports_the_services_serve_metrics_on() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"][0] for job in config["scrape_configs"]
    }
    assert targets["fairuse-worker"] == (
        f"worker:{SERVICES['worker']['environment']['FAIRUSE_WORKER_WEB_PORT']}"
    )
    assert (
        targets["fairuse-sink"]
        == f"sink:{SERVICES['sink']['environment']['FAIRUSE_SINK_WEB_PORT']}"
    )
    assert SERVICES["sink"]["environment"]["FAIRUSE_SINK_WEB_HOST"] == "0.0.0.0"


def test_dashboards_use_only_the_provisioned_data_sources() -> None:
    sources = yaml.safe_load((PROVISIONING / "datasources" / "fairuse.yml").read_text())
    uids = {source["uid"] for source in sources["datasources"]}
    for path in (ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"):
        board = json.loads(path.read_text())
        used = {
            target["datasource"]["uid"]
            for panel in board["panels"]
            for target in panel.get("targets", [])
        }
        assert used and used <= uids, path.name
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
