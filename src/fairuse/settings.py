"""One settings object, read once at the edge from ``FAIRUSE_*`` environment variables.

Every variable is documented in README.md (Configuration). Each shell receives the part it needs;
the pure core never reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from fairuse.errors import ConfigError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

TOPIC_NAMES = ("events", "usage", "violations", "enforcement", "dead-letter", "policy")


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """How to reach the Kafka cluster (``FAIRUSE_KAFKA_*``)."""

    bootstrap: str = "127.0.0.1:19092"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    topic_prefix: str = "fairuse."
    events_partitions: int = 8
    replication_factor: int = 1

    def topic(self, name: str) -> str:
        """Full topic name for ``name`` (one of ``TOPIC_NAMES``), e.g. ``fairuse.events``."""
        if name not in TOPIC_NAMES:
            raise ConfigError(f"unknown topic {name!r}; known: {', '.join(TOPIC_NAMES)}")
        return f"{self.topic_prefix}{name}"


ProcessingGuarantee = Literal["at_least_once", "exactly_once"]


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """The streaming worker (``FAIRUSE_WORKER_*``); see docs/streaming.md."""

    app_id: str = "fairuse-worker"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    canonical_url: str = ""
    store: str = "memory://"
    processing_guarantee: ProcessingGuarantee = "at_least_once"
    batch_max: int = 4000
    batch_within_ms: int = 50
    producer_linger_ms: int = 1
    max_poll_records: int = 2000
    expiry_interval_s: int = 10
    session_timeout_s: int = 30
    max_record_bytes: int = 16 * 1024 * 1024  # largest changelog/output record (topic config)
    api_token: str | None = field(default=None, repr=False)
    api_tenant_tokens: str | None = field(default=None, repr=False)


_WORKER_ENV = {f.name: f"FAIRUSE_WORKER_{f.name.upper()}" for f in fields(WorkerSettings)}
_WORKER_ENV["api_token"] = "FAIRUSE_API_TOKEN"
_WORKER_ENV["api_tenant_tokens"] = "FAIRUSE_API_TENANT_TOKENS"


@dataclass(frozen=True, slots=True)
class WarehouseSettings:
    """The warehouse and its sink (``FAIRUSE_WAREHOUSE_*``, ``FAIRUSE_SINK_*``); see docs."""

    events_ttl_days: int = 400  # 0 = keep raw events forever
    query_port: int = 0  # the store owner's query service; 0 = any free port
    sink_batch_rows: int = 50_000
    sink_batch_ms: int = 1000


_WAREHOUSE_ENV = {
    "events_ttl_days": "FAIRUSE_WAREHOUSE_EVENTS_TTL_DAYS",
    "query_port": "FAIRUSE_WAREHOUSE_QUERY_PORT",
    "sink_batch_rows": "FAIRUSE_SINK_BATCH_ROWS",
    "sink_batch_ms": "FAIRUSE_SINK_BATCH_MS",
}


def _warehouse_settings(env: Mapping[str, str]) -> WarehouseSettings:
    values: dict[str, int] = {}
    for attr, var in _WAREHOUSE_ENV.items():
        if env.get(var):
            try:
                values[attr] = int(env[var])
            except ValueError as exc:
                raise ConfigError(f"{var} must be an integer, got {env[var]!r}") from exc
            lowest = 0 if attr in ("events_ttl_days", "query_port") else 1
            if not lowest <= values[attr] <= (65535 if attr == "query_port" else 10**9):
                raise ConfigError(f"{var} is out of range: {values[attr]}")
    return WarehouseSettings(**values)


@dataclass(frozen=True, slots=True)
class Settings:
    """All of fairuse's configuration."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    data_dir: Path = Path("var")
    policy_file: Path | None = None
    warehouse_dsn: str | None = None
    warehouse: WarehouseSettings = field(default_factory=WarehouseSettings)

    @property
    def resolved_warehouse_dsn(self) -> str:
        """The warehouse DSN; the embedded chDB store under ``data_dir`` when none is set."""
        return self.warehouse_dsn or f"chdb://{(self.data_dir / 'warehouse').resolve()}"


_KAFKA_ENV = {f.name: f"FAIRUSE_KAFKA_{f.name.upper()}" for f in fields(KafkaSettings)}


def _coerce(name: str, raw: str, default: object) -> object:
    if isinstance(default, int) and not isinstance(default, bool):
        try:
            value = int(raw)
        except ValueError as exc:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
        return value
    return raw


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``env`` (default: ``os.environ``); raise ConfigError if bad."""
    env = os.environ if env is None else env
    defaults = KafkaSettings()
    kafka_kwargs: dict[str, object] = {}
    for attr, var in _KAFKA_ENV.items():
        if env.get(var):
            kafka_kwargs[attr] = _coerce(var, env[var], getattr(defaults, attr))
    kafka = KafkaSettings(**kafka_kwargs)  # type: ignore[arg-type]
    if kafka.security_protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ConfigError(f"FAIRUSE_KAFKA_SECURITY_PROTOCOL: unknown {kafka.security_protocol!r}")
    if kafka.security_protocol.startswith("SASL") and not (
        kafka.sasl_mechanism and kafka.sasl_username and kafka.sasl_password
    ):
        raise ConfigError(
            "SASL needs FAIRUSE_KAFKA_SASL_MECHANISM, FAIRUSE_KAFKA_SASL_USERNAME and "
            "FAIRUSE_KAFKA_SASL_PASSWORD"
        )
    worker_defaults = WorkerSettings()
    worker_kwargs: dict[str, object] = {}
    for attr, var in _WORKER_ENV.items():
        if env.get(var):
            worker_kwargs[attr] = _coerce(var, env[var], getattr(worker_defaults, attr))
    worker = WorkerSettings(**worker_kwargs)  # type: ignore[arg-type]
    if worker.processing_guarantee not in ("at_least_once", "exactly_once"):
        raise ConfigError(
            f"FAIRUSE_WORKER_PROCESSING_GUARANTEE: unknown {worker.processing_guarantee!r}"
        )
    policy = env.get("FAIRUSE_POLICY_FILE")
    return Settings(
        kafka=kafka,
        worker=worker,
        data_dir=Path(env.get("FAIRUSE_DATA_DIR") or "var"),
        policy_file=Path(policy) if policy else None,
        warehouse_dsn=env.get("FAIRUSE_WAREHOUSE_DSN") or None,
        warehouse=_warehouse_settings(env),
    )
