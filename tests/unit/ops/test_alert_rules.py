"""The alert rules: promtool's unit tests pass, every alert is tested, every runbook exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
RULE_TESTS = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is missing (Debian package prometheus; .ci/run installs it)",
)


def _alerts() -> dict[str, dict]:
    return {rule["alert"]: rule for group in RULES["groups"] for rule in group["rules"]}


@needs_promtool
def test_the_alert_rules_pass_their_promtool_unit_tests() -> None:
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts_test.yml"],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_the_compose_prometheus_config_is_valid(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    config = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    rules = tmp_path / "alerts.yml"
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", rules)
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/etc/prometheus/alerts.yml", str(rules))
    )
    done = subprocess.run(
        [PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_test_that_makes_it_fire() -> None:
    fired = {
        case["alertname"]
        for test in RULE_TESTS["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert fired == set(_alerts())


def test_the_alerts_the_issue_asks_for_exist() -> None:
    names = set(_alerts())
    wanted = {
        "FairuseConsumerLagGrowing", "FairuseEventTimeLagHigh", "FairuseDeadLetterSpike",
        "FairuseSinkStalled", "FairuseNotificationsFailing", "FairuseWorkerNotReady",
    }  # fmt: skip
    assert wanted <= names


def test_every_runbook_link_points_at_a_section_of_the_operations_doc() -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS_DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    for name, rule in _alerts().items():
        anchors = re.findall(r"docs/operations\.md#([\w-]+)", rule["annotations"]["description"])
        assert anchors, f"{name} has no runbook link"
        assert set(anchors) <= headings, f"{name}: {anchors} not in {OPERATIONS_DOC.name}"


def test_no_tenant_label_in_any_rule() -> None:
    text = (PROMETHEUS_DIR / "alerts.yml").read_text()
    assert "tenant" not in text
