CREATE TABLE IF NOT EXISTS schema_migrations ON CLUSTER prod
(
    version UInt32,
    name String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{database}/schema_migrations', '{replica}')
ORDER BY version
SETTINGS non_replicated_deduplication_window = 1000;

-- migration 0001_initial
CREATE TABLE IF NOT EXISTS events_local ON CLUSTER prod
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
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/events_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant_id, ts, event_id)
TTL toDateTime(ts) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS events ON CLUSTER prod AS events_local
ENGINE = Distributed(prod, currentDatabase(), events_local, cityHash64(tenant_id));

CREATE TABLE IF NOT EXISTS usage_local ON CLUSTER prod
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/usage_local', '{replica}')
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, day, metric, session_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS usage ON CLUSTER prod AS usage_local
ENGINE = Distributed(prod, currentDatabase(), usage_local, cityHash64(tenant_id));

CREATE TABLE IF NOT EXISTS usage_daily_local ON CLUSTER prod
(
    tenant_id   LowCardinality(String),
    day         Date,
    metric      LowCardinality(String),
    weighted_ms Float64,
    raw_ms      UInt64,
    accruals    UInt64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/{database}/usage_daily_local', '{replica}')
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, day, metric)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS usage_daily ON CLUSTER prod AS usage_daily_local
ENGINE = Distributed(prod, currentDatabase(), usage_daily_local, cityHash64(tenant_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_daily_mv_local ON CLUSTER prod TO usage_daily_local AS
SELECT tenant_id, day, metric,
       sum(weighted_ms) AS weighted_ms, sum(raw_ms) AS raw_ms, count() AS accruals
FROM usage_local
GROUP BY tenant_id, day, metric;

CREATE TABLE IF NOT EXISTS usage_daily_by_user_local ON CLUSTER prod
(
    tenant_id   LowCardinality(String),
    user_id     String,
    day         Date,
    metric      LowCardinality(String),
    weighted_ms Float64,
    raw_ms      UInt64,
    accruals    UInt64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/{database}/usage_daily_by_user_local', '{replica}')
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, day, metric, user_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS usage_daily_by_user ON CLUSTER prod AS usage_daily_by_user_local
ENGINE = Distributed(prod, currentDatabase(), usage_daily_by_user_local, cityHash64(tenant_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_daily_by_user_mv_local ON CLUSTER prod TO usage_daily_by_user_local AS
SELECT tenant_id, user_id, day, metric,
       sum(weighted_ms) AS weighted_ms, sum(raw_ms) AS raw_ms, count() AS accruals
FROM usage_local
GROUP BY tenant_id, user_id, day, metric;

CREATE TABLE IF NOT EXISTS violations_local ON CLUSTER prod
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/violations_local', '{replica}')
ORDER BY (tenant_id, violation_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS violations ON CLUSTER prod AS violations_local
ENGINE = Distributed(prod, currentDatabase(), violations_local, cityHash64(tenant_id));

CREATE TABLE IF NOT EXISTS enforcement_local ON CLUSTER prod
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/enforcement_local', '{replica}')
ORDER BY (tenant_id, enforcement_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS enforcement ON CLUSTER prod AS enforcement_local
ENGINE = Distributed(prod, currentDatabase(), enforcement_local, cityHash64(tenant_id));

CREATE TABLE IF NOT EXISTS dead_letters_local ON CLUSTER prod
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/dead_letters_local', '{replica}')
ORDER BY (tenant_id, dead_letter_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS dead_letters ON CLUSTER prod AS dead_letters_local
ENGINE = Distributed(prod, currentDatabase(), dead_letters_local, cityHash64(tenant_id));

-- migration 0002_notifications
CREATE TABLE IF NOT EXISTS notifications_local ON CLUSTER prod
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/notifications_local', '{replica}')
ORDER BY (tenant_id, record_id, notification_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS notifications ON CLUSTER prod AS notifications_local
ENGINE = Distributed(prod, currentDatabase(), notifications_local, cityHash64(tenant_id));

-- migration 0003_policy_fidelity
ALTER TABLE violations_local ON CLUSTER prod
    MODIFY COLUMN seats Float64,
    ADD COLUMN IF NOT EXISTS user_id String DEFAULT '' AFTER seats;

ALTER TABLE violations ON CLUSTER prod
    MODIFY COLUMN seats Float64,
    ADD COLUMN IF NOT EXISTS user_id String DEFAULT '' AFTER seats;

ALTER TABLE enforcement_local ON CLUSTER prod
    ADD COLUMN IF NOT EXISTS metrics String DEFAULT '[]' AFTER strikes,
    ADD COLUMN IF NOT EXISTS until Nullable(DateTime64(3, 'UTC')) AFTER metrics;

ALTER TABLE enforcement ON CLUSTER prod
    ADD COLUMN IF NOT EXISTS metrics String DEFAULT '[]' AFTER strikes,
    ADD COLUMN IF NOT EXISTS until Nullable(DateTime64(3, 'UTC')) AFTER metrics;

-- migration 0004_statements
CREATE TABLE IF NOT EXISTS statements_local ON CLUSTER prod
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/statements_local', '{replica}')
ORDER BY (tenant_id, period, metric, statement_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS statements ON CLUSTER prod AS statements_local
ENGINE = Distributed(prod, currentDatabase(), statements_local, cityHash64(tenant_id));

CREATE TABLE IF NOT EXISTS adjustments_local ON CLUSTER prod
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/adjustments_local', '{replica}')
ORDER BY (tenant_id, period, metric, statement_id, adjustment_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS adjustments ON CLUSTER prod AS adjustments_local
ENGINE = Distributed(prod, currentDatabase(), adjustments_local, cityHash64(tenant_id));
