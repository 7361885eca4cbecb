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

TOPIC_NAMES = (
    "events",
    "usage",
    "violations",
    "enforcement",
    "dead-letter",
    "policy",
    "notifications",
    "notify-dead-letter",
    "notify-deliveries",
    "statements",
)


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


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """The streaming worker (``FAIRUSE_WORKER_*``); see docs/streaming.md."""

    app_id: str = "fairuse-worker"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    canonical_url: str = ""
    store: str = "memory://"
    batch_max: int = 4000
    batch_within_ms: int = 50
    producer_linger_ms: int = 1
    max_poll_records: int = 2000
    fetch_max_wait_ms: int = 100  # a busy partition waits this long behind a fetch of idle ones
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


SmtpTls = Literal["none", "starttls", "tls"]


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """The notifier ``fairuse notify`` (``FAIRUSE_NOTIFY_*``); see docs/notifications.md."""

    subscriptions: Path | None = None
    topics: tuple[str, ...] = ("violations", "enforcement", "statements")
    group_id: str = "fairuse-notify"
    offset_reset: Literal["earliest", "latest"] = "earliest"
    web_host: str = "127.0.0.1"
    web_port: int = 6068
    reload_interval_s: float = 2.0
    retry_initial_s: float = 30.0
    retry_max_delay_s: float = 3600.0
    retry_max_age_s: float = 86400.0
    retry_jitter: float = 0.2
    http_timeout_s: float = 10.0
    target_concurrency: int = 4
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_tls: SmtpTls = "none"
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str = "fairuse@localhost"
    smtp_timeout_s: float = 30.0
    prior_notice: str = (
        "To tell us in advance about a period of high traffic, send a usage notice "
        "(a usage_notice event with the period and the metrics) or contact your account manager."
    )


_NOTIFY_MAX_AGE_S = 7 * 86400  # below the retention of the notify-deliveries state topic


_NOTIFY_ENV = {f.name: f"FAIRUSE_NOTIFY_{f.name.upper()}" for f in fields(NotifySettings)}


def _notify_settings(env: Mapping[str, str]) -> NotifySettings:
    defaults = NotifySettings()
    values: dict[str, object] = {}
    for f in fields(NotifySettings):
        var = _NOTIFY_ENV[f.name]
        raw = env.get(var)
        if not raw:
            continue
        default = getattr(defaults, f.name)
        if f.name == "subscriptions":
            values[f.name] = Path(raw)
        elif f.name == "topics":
            values[f.name] = tuple(t.strip() for t in raw.split(",") if t.strip())
            unknown = [t for t in values[f.name] if t not in TOPIC_NAMES]  # type: ignore[union-attr]
            if unknown:
                raise ConfigError(f"{var}: unknown topic(s) {', '.join(unknown)}")
        elif isinstance(default, int | float):
            kind = float if isinstance(default, float) else int
            try:
                number = kind(raw)
            except ValueError as exc:
                raise ConfigError(f"{var} must be a number, got {raw!r}") from exc
            if number < 0 or (number == 0 and f.name not in ("web_port", "retry_jitter")):
                raise ConfigError(f"{var} is out of range: {raw}")
            values[f.name] = number
        else:
            values[f.name] = raw
    notify = NotifySettings(**values)  # type: ignore[arg-type]
    if notify.smtp_tls not in ("none", "starttls", "tls"):
        raise ConfigError(f"FAIRUSE_NOTIFY_SMTP_TLS: unknown {notify.smtp_tls!r}")
    if notify.offset_reset not in ("earliest", "latest"):
        raise ConfigError(f"FAIRUSE_NOTIFY_OFFSET_RESET: unknown {notify.offset_reset!r}")
    if notify.retry_max_age_s > _NOTIFY_MAX_AGE_S or notify.retry_jitter >= 1:
        raise ConfigError(
            "FAIRUSE_NOTIFY_RETRY_MAX_AGE_S must be at most 7 days and "
            "FAIRUSE_NOTIFY_RETRY_JITTER below 1"
        )
    return notify


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """``fairuse ingest``, the HTTP front door (``FAIRUSE_INGEST_*``); see docs/recorder.md."""

    host: str = "127.0.0.1"
    port: int = 8088
    tokens: str | None = field(default=None, repr=False)  # "token=tenant-a,tenant-b;token2=*"
    max_body_bytes: int = 8 * 1024 * 1024
    max_events: int = 10_000  # per request
    rate_events_per_s: int = 50_000  # per token; the burst is one second's worth or max_events
    broker_timeout_ms: int = 10_000  # an event not acknowledged within this answers 503
    retry_after_s: int = 5  # Retry-After of a 503 while the broker is away


_INGEST_ENV = {f.name: f"FAIRUSE_INGEST_{f.name.upper()}" for f in fields(IngestSettings)}


def _ingest_settings(env: Mapping[str, str]) -> IngestSettings:
    defaults = IngestSettings()
    values = {
        attr: _coerce(var, env[var], getattr(defaults, attr))
        for attr, var in _INGEST_ENV.items()
        if env.get(var)
    }
    ingest = IngestSettings(**values)  # type: ignore[arg-type]
    if not 1 <= ingest.port <= 65535:
        raise ConfigError(f"FAIRUSE_INGEST_PORT is out of range: {ingest.port}")
    return ingest


@dataclass(frozen=True, slots=True)
class OpsSettings:
    """Metrics and health endpoints (``FAIRUSE_METRICS_*``, ``FAIRUSE_SINK_WEB_*``); see
    docs/operations.md. The worker serves them on its own web port."""

    metrics_enabled: bool = True  # False: the worker records no metrics (bench/metrics.py)
    lag_interval_s: int = 10  # how often the worker and the sink read their consumer lag
    sink_web_host: str = "127.0.0.1"
    sink_web_port: int = 6067  # the sink's /metrics, /healthz, /readyz; 0 = not served


_OPS_ENV = {
    "metrics_enabled": "FAIRUSE_METRICS_ENABLED",
    "lag_interval_s": "FAIRUSE_METRICS_LAG_INTERVAL_S",
    "sink_web_host": "FAIRUSE_SINK_WEB_HOST",
    "sink_web_port": "FAIRUSE_SINK_WEB_PORT",
}


def _ops_settings(env: Mapping[str, str]) -> OpsSettings:
    values: dict[str, object] = {}
    for attr, var in _OPS_ENV.items():
        raw = env.get(var)
        if not raw:
            continue
        if attr == "metrics_enabled":
            if raw.lower() not in ("1", "true", "yes", "0", "false", "no"):
                raise ConfigError(f"{var} must be true or false, got {raw!r}")
            values[attr] = raw.lower() in ("1", "true", "yes")
        elif attr == "sink_web_host":
            values[attr] = raw
        else:
            try:
                number = int(raw)
            except ValueError as exc:
                raise ConfigError(f"{var} must be an integer, got {raw!r}") from exc
            lowest, highest = (0, 65535) if attr == "sink_web_port" else (1, 3600)
            if not lowest <= number <= highest:
                raise ConfigError(f"{var} is out of range: {number}")
            values[attr] = number
    return OpsSettings(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class PortalSettings:
    """The customer portal ``fairuse portal`` (``FAIRUSE_PORTAL_*``); see docs/portal.md."""

    host: str = "127.0.0.1"
    port: int = 6069
    secret: str | None = field(default=None, repr=False)  # HMAC key of the signed links
    public_url: str = "http://127.0.0.1:6069"  # the base of the links `portal link` prints
    worker_url: str = "http://127.0.0.1:6066"  # the worker's HTTP API
    worker_token: str | None = field(default=None, repr=False)  # default: FAIRUSE_API_TOKEN
    worker_timeout_s: int = 5


_PORTAL_ENV = {f.name: f"FAIRUSE_PORTAL_{f.name.upper()}" for f in fields(PortalSettings)}


def _portal_settings(env: Mapping[str, str]) -> PortalSettings:
    defaults = PortalSettings()
    values = {
        attr: _coerce(var, env[var], getattr(defaults, attr))
        for attr, var in _PORTAL_ENV.items()
        if env.get(var)
    }
    values.setdefault("worker_token", env.get("FAIRUSE_API_TOKEN") or None)
    portal = PortalSettings(**values)  # type: ignore[arg-type]
    if not 1 <= portal.port <= 65535:
        raise ConfigError(f"FAIRUSE_PORTAL_PORT is out of range: {portal.port}")
    return portal


@dataclass(frozen=True, slots=True)
class DecisionSettings:
    """The worker's decision endpoint for gateways (``FAIRUSE_DECISION_CACHE_MAX_AGE_S``): how
    long a gateway may cache a decision (``Cache-Control: max-age``, ``cache_max_age_s``)."""

    cache_max_age_s: int = 5


def _decision_settings(env: Mapping[str, str]) -> DecisionSettings:
    var = "FAIRUSE_DECISION_CACHE_MAX_AGE_S"
    raw = env.get(var)
    if not raw:
        return DecisionSettings()
    try:
        seconds = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{var} must be an integer, got {raw!r}") from exc
    if not 0 <= seconds <= 3600:
        raise ConfigError(f"{var} is out of range (0-3600): {seconds}")
    return DecisionSettings(cache_max_age_s=seconds)


@dataclass(frozen=True, slots=True)
class RocksDBSettings:
    """Memory bounds of the worker's RocksDB store (``FAIRUSE_WORKER_ROCKSDB_*``), per table
    partition the worker holds (each is one RocksDB database); see docs/streaming.md."""

    block_cache_bytes: int = 64 * 1024 * 1024  # LRU cache of read blocks (Faust's: 2 GiB)
    write_buffer_bytes: int = 16 * 1024 * 1024  # one memtable (Faust's: 64 MiB)
    write_buffers: int = 2  # memtables at most, the one written plus those being flushed (3)
    max_open_files: int = 256  # SST files kept open, with their index and filter blocks

    def table_options(self) -> dict[str, int]:
        """The options of Faust's RocksDB store (``app.Table(options=...)``)."""
        return {
            "block_cache_size": self.block_cache_bytes,
            "write_buffer_size": self.write_buffer_bytes,
            "max_write_buffer_number": self.write_buffers,
            "max_open_files": self.max_open_files,
        }


_ROCKSDB_ENV = {f.name: f"FAIRUSE_WORKER_ROCKSDB_{f.name.upper()}" for f in fields(RocksDBSettings)}


def _rocksdb_settings(env: Mapping[str, str]) -> RocksDBSettings:
    defaults = RocksDBSettings()
    values = {
        attr: _coerce(var, env[var], getattr(defaults, attr))
        for attr, var in _ROCKSDB_ENV.items()
        if env.get(var)
    }
    return RocksDBSettings(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Settings:
    """All of fairuse's configuration."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    data_dir: Path = Path("var")
    policy_file: Path | None = None
    warehouse_dsn: str | None = None
    warehouse: WarehouseSettings = field(default_factory=WarehouseSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    ops: OpsSettings = field(default_factory=OpsSettings)
    portal: PortalSettings = field(default_factory=PortalSettings)
    decision: DecisionSettings = field(default_factory=DecisionSettings)
    rocksdb: RocksDBSettings = field(default_factory=RocksDBSettings)

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
    policy = env.get("FAIRUSE_POLICY_FILE")
    return Settings(
        kafka=kafka,
        worker=worker,
        data_dir=Path(env.get("FAIRUSE_DATA_DIR") or "var"),
        policy_file=Path(policy) if policy else None,
        warehouse_dsn=env.get("FAIRUSE_WAREHOUSE_DSN") or None,
        warehouse=_warehouse_settings(env),
        notify=_notify_settings(env),
        ingest=_ingest_settings(env),
        ops=_ops_settings(env),
        portal=_portal_settings(env),
        decision=_decision_settings(env),
        rocksdb=_rocksdb_settings(env),
    )
