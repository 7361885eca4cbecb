"""The Helm chart renders (``helm template``) and every object is valid offline.

Built-in kinds are validated with ``kubernetes-validate`` against the Kubernetes schemas
(strict: unknown fields fail). The operators' kinds (KEDA, Strimzi, Altinity, Prometheus
Operator) are not in those schemas: each is checked against a schema below that holds the
fields the operator requires and the chart relies on. helm is built once from the Go module
proxy by deploy/helm/install-helm.sh (``.ci/run`` calls it); without it these tests skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "deploy" / "helm" / "fairuse"
INSTALL_HELM = ROOT / "deploy" / "helm" / "install-helm.sh"
KUBERNETES_VERSION = "1.31.0"


def _helm() -> str | None:
    found = shutil.which("helm")
    if found:
        return found
    version = re.search(r'HELM_VERSION="\$\{HELM_VERSION:-(v[\d.]+)\}"', INSTALL_HELM.read_text())
    assert version, "HELM_VERSION not pinned in deploy/helm/install-helm.sh"
    cached = Path.home() / ".cache" / "fairuse" / f"helm-{version[1]}" / "helm"
    return str(cached) if cached.exists() else None


HELM = _helm()
pytestmark = pytest.mark.skipif(
    HELM is None, reason="helm is missing: run deploy/helm/install-helm.sh (needs Go)"
)

_STRING = {"type": "string", "minLength": 1}
_NAMED = {"type": "object", "required": ["name"], "properties": {"name": _STRING}}
CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "keda.sh/v1alpha1/ScaledObject": {
        "required": ["spec"],
        "properties": {"spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers", "minReplicaCount", "maxReplicaCount"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object", "required": ["name", "kind", "apiVersion"],
                    "properties": {"kind": {"enum": ["StatefulSet", "Deployment"]}},
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "triggers": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["type", "metadata"],
                    "properties": {
                        "type": {"const": "kafka"},
                        "metadata": {
                            "type": "object",
                            "required": ["bootstrapServers", "consumerGroup", "topic",
                                         "lagThreshold"],
                            "additionalProperties": {"type": "string"},
                        },
                        "authenticationRef": _NAMED,
                    },
                }},
            },
        }},
    },
    "keda.sh/v1alpha1/TriggerAuthentication": {
        "required": ["spec"],
        "properties": {"spec": {"type": "object", "required": ["secretTargetRef"], "properties": {
            "secretTargetRef": {"type": "array", "items": {
                "type": "object", "required": ["parameter", "name", "key"],
            }},
        }}},
    },
    "kafka.strimzi.io/v1beta2/KafkaTopic": {
        "required": ["spec"],
        "properties": {
            "metadata": {"type": "object", "required": ["labels"], "properties": {
                "labels": {"type": "object", "required": ["strimzi.io/cluster"]},
            }},
            "spec": {"type": "object", "required": ["topicName", "partitions", "replicas"],
                     "properties": {
                         "partitions": {"type": "integer", "minimum": 1},
                         "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                         "config": {"type": "object"},
                     }},
        },
    },
    "clickhouse.altinity.com/v1/ClickHouseInstallation": {
        "required": ["spec"],
        "properties": {"spec": {"type": "object", "required": ["configuration"], "properties": {
            "configuration": {"type": "object", "required": ["clusters"], "properties": {
                "clusters": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["name", "layout"], "properties": {
                        "layout": {"type": "object", "properties": {
                            "shardsCount": {"type": "integer", "minimum": 1},
                            "replicasCount": {"type": "integer", "minimum": 1},
                        }},
                    },
                }},
            }},
        }}},
    },
    "monitoring.coreos.com/v1/ServiceMonitor": {
        "required": ["spec"],
        "properties": {"spec": {"type": "object", "required": ["selector", "endpoints"]}},
    },
}  # fmt: skip


def render(*sets: str) -> list[dict[str, Any]]:
    """The chart's objects for the default values plus ``--set`` ``sets``."""
    assert HELM is not None
    args = [HELM, "template", "fairuse", str(CHART), "--namespace", "pipeline"]
    for value in sets:
        args += ["--set", value]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def validate(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        key = f"{obj['apiVersion']}/{obj['kind']}"
        if key in CRD_SCHEMAS:
            schema = {"type": "object", "required": ["metadata"], **CRD_SCHEMAS[key]}
            jsonschema.validate(obj, schema)
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


VARIANTS = {
    "defaults": (),
    "external warehouse, SASL, monitoring": (
        "clickhouse.operator=false", "clickhouse.cluster=",
        "secrets.warehouseDsn=http://u:p@ch.example:8123/fairuse",
        "kafka.securityProtocol=SASL_SSL", "kafka.saslMechanism=SCRAM-SHA-512",
        "kafka.saslUsername=fairuse", "metrics.serviceMonitor=true",
    ),
    "existing secret, no notifier, no autoscaling": (
        "secrets.existingSecret=fairuse-prod", "notify.enabled=false", "portal.enabled=false",
        "worker.autoscaling.enabled=false", "sink.autoscaling.enabled=false",
        "kafka.strimzi.topics=false", "networkPolicy.enabled=false",
    ),
}  # fmt: skip


@pytest.mark.parametrize("sets", VARIANTS.values(), ids=VARIANTS.keys())
def test_every_rendered_object_is_valid(sets: tuple[str, ...]) -> None:
    objects = render(*sets)
    assert objects
    validate(objects)


def test_the_default_render_has_every_piece_of_the_deployment() -> None:
    objects = render()
    kinds = {o["kind"] for o in objects}
    assert {
        "StatefulSet", "Deployment", "Service", "Secret", "ScaledObject", "KafkaTopic",
        "ClickHouseInstallation", "PodDisruptionBudget", "NetworkPolicy",
    } <= kinds  # fmt: skip
    assert set(by_kind(objects, "Deployment")) == {
        "fairuse-sink", "fairuse-notify", "fairuse-portal"
    }  # fmt: skip
    assert set(by_kind(objects, "PodDisruptionBudget")) == {
        "fairuse-worker", "fairuse-sink", "fairuse-notify", "fairuse-portal"
    }  # fmt: skip
    topics = {o["spec"]["topicName"] for o in by_kind(objects, "KafkaTopic").values()}
    assert topics == {
        f"fairuse.{t}"
        for t in ("events", "usage", "violations", "enforcement", "dead-letter", "statements",
                  "policy")
    }  # fmt: skip


def test_the_worker_is_a_statefulset_with_a_volume_and_a_headless_service() -> None:
    objects = render()
    worker = by_kind(objects, "StatefulSet")["fairuse-worker"]
    headless = by_kind(objects, "Service")[worker["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    (claim,) = worker["spec"]["volumeClaimTemplates"]
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in container["volumeMounts"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FAIRUSE_DATA_DIR"] == "/data" and env["FAIRUSE_WORKER_STORE"] == "rocksdb://"
    assert env["FAIRUSE_WORKER_CANONICAL_URL"] == (
        "http://$(POD_NAME).fairuse-worker-headless.pipeline.svc:6066"
    )


def test_every_component_has_probes_on_healthz_and_readyz_and_resource_requests() -> None:
    objects = render()
    workloads = [
        *by_kind(objects, "StatefulSet").values(),
        *by_kind(objects, "Deployment").values(),
    ]
    for workload in workloads:
        for container in workload["spec"]["template"]["spec"]["containers"]:
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])


def test_autoscaling_follows_consumer_lag_and_never_exceeds_the_partitions() -> None:
    objects = render("kafka.eventsPartitions=4", "worker.autoscaling.maxReplicas=16")
    scaled = by_kind(objects, "ScaledObject")
    worker, sink = scaled["fairuse-worker"]["spec"], scaled["fairuse-sink"]["spec"]
    assert worker["scaleTargetRef"]["kind"] == "StatefulSet"
    assert worker["maxReplicaCount"] == 4
    trigger = worker["triggers"][0]["metadata"]
    assert (trigger["consumerGroup"], trigger["topic"]) == ("fairuse-worker", "fairuse.events")
    assert sink["triggers"][0]["metadata"]["consumerGroup"] == "fairuse-sink"


def test_secrets_hold_tokens_sasl_and_smtp_and_are_referenced_not_inlined() -> None:
    objects = render(
        "kafka.securityProtocol=SASL_SSL", "kafka.saslMechanism=PLAIN",
        "kafka.saslUsername=fairuse", "secrets.saslPassword=hunter2",
    )  # fmt: skip
    secret = by_kind(objects, "Secret")["fairuse-secrets"]
    assert {"apiToken", "saslPassword", "smtpPassword", "clickhousePassword"} <= set(
        secret["stringData"]
    )
    rendered = yaml.safe_dump_all([o for o in objects if o["kind"] != "Secret"])
    assert "hunter2" not in rendered
    auth = by_kind(objects, "TriggerAuthentication")["fairuse-kafka"]
    assert auth["spec"]["secretTargetRef"][0]["key"] == "saslPassword"
    trigger = by_kind(objects, "ScaledObject")["fairuse-worker"]["spec"]["triggers"][0]
    assert trigger["metadata"]["sasl"] == "plaintext"


def test_an_external_warehouse_replaces_the_clickhouse_installation() -> None:
    objects = render(
        "clickhouse.operator=false", "clickhouse.cluster=",
        "secrets.warehouseDsn=http://u:p@ch.example:8123/fairuse",
    )  # fmt: skip
    assert not by_kind(objects, "ClickHouseInstallation")
    sink = by_kind(objects, "Deployment")["fairuse-sink"]["spec"]["template"]["spec"]
    assert "initContainers" not in sink
    dsn = {e["name"]: e for e in sink["containers"][0]["env"]}["FAIRUSE_WAREHOUSE_DSN"]
    assert dsn["valueFrom"]["secretKeyRef"]["key"] == "warehouseDsn"


def test_helm_lint_passes() -> None:
    assert HELM is not None
    done = subprocess.run([HELM, "lint", str(CHART)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
