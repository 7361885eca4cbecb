CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32,
    name String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree()
ORDER BY version
SETTINGS non_replicated_deduplication_window = 1000;

-- migration 0001_initial
CREATE TABLE IF NOT EXISTS events
(
    event_id    String,
    tenant_id   LowCardinality(String),
    type        LowCardinality(String),
    ts          DateTime64(3, 'UTC'),
    session_id  String,
    user_id     String,
    call_id     String,
    media       LowCardinality(String),
    api_count   UInt32,
    raw         String CODEC(ZSTD(3)),
    source      String,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant_id, ts, event_id)
TTL toDateTime(ts) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS usage
(
    tenant_id   LowCardinality(String),
    metric      LowCardinality(String),
    day         Date,
    weighted_ms Float64,
    raw_ms      UInt64,
    session_id  String,
    user_id     String,
    event_id    String,
    source      String,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, day, metric, session_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS usage_daily
(
    tenant_id   LowCardinality(String),
    day         Date,
    metric      LowCardinality(String),
    weighted_ms Float64,
    raw_ms      UInt64,
    accruals    UInt64
)
ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, day, metric)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_daily_mv TO usage_daily AS
SELECT tenant_id, day, metric,
       sum(weighted_ms) AS weighted_ms, sum(raw_ms) AS raw_ms, count() AS accruals
FROM usage
GROUP BY tenant_id, day, metric;

CREATE TABLE IF NOT EXISTS usage_daily_by_user
(
    tenant_id   LowCardinality(String),
    user_id     String,
    day         Date,
    metric      LowCardinality(String),
    weighted_ms Float64,
    raw_ms      UInt64,
    accruals    UInt64
)
ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, day, metric, user_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_daily_by_user_mv TO usage_daily_by_user AS
SELECT tenant_id, user_id, day, metric,
       sum(weighted_ms) AS weighted_ms, sum(raw_ms) AS raw_ms, count() AS accruals
FROM usage
GROUP BY tenant_id, user_id, day, metric;

CREATE TABLE IF NOT EXISTS violations
(
    violation_id    String,
    tenant_id       LowCardinality(String),
    metric          LowCardinality(String),
    period          String,
    status          LowCardinality(String),
    observed        Float64,
    `limit`         Float64,
    unit            LowCardinality(String),
    seats           UInt32,
    policy_revision String,
    ts              DateTime64(3, 'UTC'),
    source          String,
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree()
ORDER BY (tenant_id, violation_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS enforcement
(
    enforcement_id String,
    tenant_id      LowCardinality(String),
    kind           LowCardinality(String),
    action         LowCardinality(String),
    ts             DateTime64(3, 'UTC'),
    effective_at   DateTime64(3, 'UTC'),
    strikes        Array(String),
    source         String,
    ingested_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree()
ORDER BY (tenant_id, enforcement_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS dead_letters
(
    dead_letter_id String,
    tenant_id      LowCardinality(String),
    event_id       String,
    reason         LowCardinality(String),
    detail         String,
    raw            String CODEC(ZSTD(3)),
    raw_encoding   LowCardinality(String),
    ts             Nullable(DateTime64(3, 'UTC')),
    source         String,
    origin         LowCardinality(String),
    ingested_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree()
ORDER BY (tenant_id, dead_letter_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- migration 0002_notifications
CREATE TABLE IF NOT EXISTS notifications
(
    notification_id String,
    record_id       String,
    kind            LowCardinality(String),
    tenant_id       LowCardinality(String),
    subscription    String,
    channel         LowCardinality(String),
    target          String,
    attempt         UInt32,
    outcome         LowCardinality(String),
    status          String,
    latency_ms      Float64,
    error           String,
    gave_up         Bool,
    attempted_at    DateTime64(3, 'UTC'),
    record_ts       DateTime64(3, 'UTC'),
    published_at    DateTime64(3, 'UTC'),
    source          String,
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree()
ORDER BY (tenant_id, record_id, notification_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- migration 0003_policy_fidelity
ALTER TABLE violations
    MODIFY COLUMN seats Float64,
    ADD COLUMN IF NOT EXISTS user_id String DEFAULT '' AFTER seats;

ALTER TABLE enforcement
    ADD COLUMN IF NOT EXISTS metrics String DEFAULT '[]' AFTER strikes,
    ADD COLUMN IF NOT EXISTS until Nullable(DateTime64(3, 'UTC')) AFTER metrics;

-- migration 0004_statements
CREATE TABLE IF NOT EXISTS statements
(
    statement_id    String,
    tenant_id       LowCardinality(String),
    metric          LowCardinality(String),
    period          String,
    period_start    DateTime64(3, 'UTC'),
    period_end      DateTime64(3, 'UTC'),
    observed        Float64,
    `limit`         Float64,
    seats           Float64,
    excess          Float64,
    unit            LowCardinality(String),
    announced       Float64,
    violation_ids   Array(String),
    policy_revision String,
    closed_at       DateTime64(3, 'UTC'),
    source          String,
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree()
ORDER BY (tenant_id, period, metric, statement_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS adjustments
(
    adjustment_id   String,
    statement_id    String,
    tenant_id       LowCardinality(String),
    metric          LowCardinality(String),
    period          String,
    delta_observed  Float64,
    delta_excess    Float64,
    delta_announced Float64,
    caused_by       String,
    `at`            DateTime64(3, 'UTC'),
    source          String,
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree()
ORDER BY (tenant_id, period, metric, statement_id, adjustment_id)
SETTINGS non_replicated_deduplication_window = 1000;
