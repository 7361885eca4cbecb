-- fairuse warehouse schema, migration 0001.
--
-- Template markers (rendered by fairuse.warehouse.schema; nothing else is substituted):
--   {table:NAME}   the created object: NAME (single node) or NAME_local ON CLUSTER c (cluster)
--   {ref:NAME}     a reference to a local table: NAME or NAME_local
--   {engine:E(a)}  E(a) or its Replicated variant with the keeper path and replica macros
--   {events_ttl}   TTL clause from FAIRUSE_WAREHOUSE_EVENTS_TTL_DAYS (empty when 0)
--   {settings}     table settings every table carries (insert deduplication window)
-- In cluster mode each CREATE TABLE also gets a Distributed table NAME sharded by
-- cityHash64(tenant_id), so a tenant's rows (and their dedup keys) live on one shard.
-- All times are DateTime64(3, 'UTC'); days are the tenant's local calendar day (Date).

-- Raw events that passed the wire contract (fairuse.events), typed common fields + raw JSON.
-- ORDER BY starts with tenant_id then ts: every analyst question names a tenant and a period,
-- so a tenant-month read touches one partition and one primary-key range.
CREATE TABLE IF NOT EXISTS {table:events}
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
ENGINE = {engine:MergeTree()}
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant_id, ts, event_id)
{events_ttl}
SETTINGS {settings};

-- Usage accruals (fairuse.usage): recorded time per session per local day. The core may publish
-- an accrual twice after a crash; ReplacingMergeTree keyed by the accrual's identity
-- (tenant, day, metric, session, event) removes such copies: read it with FINAL.
CREATE TABLE IF NOT EXISTS {table:usage}
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
ENGINE = {engine:ReplacingMergeTree()}
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, day, metric, session_id, event_id)
SETTINGS {settings};

-- Daily aggregate per tenant, local day and metric, fed by usage_daily_mv on every insert into
-- usage. Parts merge eventually: always re-aggregate with sum() ... GROUP BY when reading.
-- Fed by inserts, so an accrual the core published twice counts twice here (see the cookbook's
-- consistency check); reports that must be exact read usage FINAL.
CREATE TABLE IF NOT EXISTS {table:usage_daily}
(
    tenant_id   LowCardinality(String),
    day         Date,
    metric      LowCardinality(String),
    weighted_ms Float64,
    raw_ms      UInt64,
    accruals    UInt64
)
ENGINE = {engine:SummingMergeTree()}
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, day, metric)
SETTINGS {settings};

CREATE MATERIALIZED VIEW IF NOT EXISTS {table:usage_daily_mv} TO {ref:usage_daily} AS
SELECT tenant_id, day, metric,
       sum(weighted_ms) AS weighted_ms, sum(raw_ms) AS raw_ms, count() AS accruals
FROM {ref:usage}
GROUP BY tenant_id, day, metric;

-- The same per named user, for analysts looking for the heavy users of a tenant.
CREATE TABLE IF NOT EXISTS {table:usage_daily_by_user}
(
    tenant_id   LowCardinality(String),
    user_id     String,
    day         Date,
    metric      LowCardinality(String),
    weighted_ms Float64,
    raw_ms      UInt64,
    accruals    UInt64
)
ENGINE = {engine:SummingMergeTree()}
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, day, metric, user_id)
SETTINGS {settings};

CREATE MATERIALIZED VIEW IF NOT EXISTS {table:usage_daily_by_user_mv} TO {ref:usage_daily_by_user} AS
SELECT tenant_id, user_id, day, metric,
       sum(weighted_ms) AS weighted_ms, sum(raw_ms) AS raw_ms, count() AS accruals
FROM {ref:usage}
GROUP BY tenant_id, user_id, day, metric;

-- Violations (fairuse.violations): deterministic ids, deduplicated by id; read with FINAL.
CREATE TABLE IF NOT EXISTS {table:violations}
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
ENGINE = {engine:ReplacingMergeTree()}
ORDER BY (tenant_id, violation_id)
SETTINGS {settings};

-- Enforcement steps (fairuse.enforcement): deduplicated by id; read with FINAL.
CREATE TABLE IF NOT EXISTS {table:enforcement}
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
ENGINE = {engine:ReplacingMergeTree()}
ORDER BY (tenant_id, enforcement_id)
SETTINGS {settings};

-- Dead letters: the core's (fairuse.dead-letter, origin 'core') and messages the sink itself
-- could not decode on any of its topics (origin 'sink'). Deduplicated by id; read with FINAL.
CREATE TABLE IF NOT EXISTS {table:dead_letters}
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
ENGINE = {engine:ReplacingMergeTree()}
ORDER BY (tenant_id, dead_letter_id)
SETTINGS {settings};
