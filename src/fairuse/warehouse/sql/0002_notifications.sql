-- fairuse warehouse schema, migration 0002: the notifier's delivery log.
--
-- Markers as in 0001_initial.sql ({table:...}, {engine:...}, {settings}).

-- Every delivery attempt of the notifier (fairuse.notifications): one row per attempt of one
-- record to one target (webhook URL or e-mail address). notification_id is deterministic per
-- delivery and attempt number, so an attempt logged twice (a notifier restarted between the
-- attempt and its state update) collapses: read with FINAL. ORDER BY starts with the tenant and
-- the record: billing's question is "did this tenant's notice reach them, and when".
CREATE TABLE IF NOT EXISTS {table:notifications}
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
ENGINE = {engine:ReplacingMergeTree()}
ORDER BY (tenant_id, record_id, notification_id)
SETTINGS {settings};
