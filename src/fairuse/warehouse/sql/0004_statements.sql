-- fairuse warehouse schema, migration 0004: statements and adjustments for billing (issue 10).
--
-- Markers as in 0001_initial.sql ({table:...}, {engine:...}, {settings}).

-- Statements (fairuse.statements, kind "statement"): the final figures of one tenant, metric and
-- period (YYYY-MM, or YYYY-MM-DD for api_calls), emitted once when the period closes.
-- statement_id is deterministic: a statement published twice collapses; read with FINAL.
CREATE TABLE IF NOT EXISTS {table:statements}
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
ENGINE = {engine:ReplacingMergeTree()}
ORDER BY (tenant_id, period, metric, statement_id)
SETTINGS {settings};

-- Adjustments (fairuse.statements, kind "adjustment"): a late event's change to a closed
-- period; the final figure is the statement's plus the sum of its adjustments' deltas.
-- adjustment_id is deterministic: read with FINAL.
CREATE TABLE IF NOT EXISTS {table:adjustments}
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
ENGINE = {engine:ReplacingMergeTree()}
ORDER BY (tenant_id, period, metric, statement_id, adjustment_id)
SETTINGS {settings};
