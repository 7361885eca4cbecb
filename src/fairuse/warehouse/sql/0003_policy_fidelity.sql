-- fairuse warehouse schema, migration 0003: the record fields of issue 9 (policy fidelity).
--
-- Template markers (rendered by fairuse.warehouse.schema; nothing else is substituted):
--   {table:NAME}   the altered object: NAME (single node) or NAME_local ON CLUSTER c (cluster)
-- In cluster mode each ALTER TABLE is repeated on the Distributed table
-- (ALTER TABLE NAME ON CLUSTER c ...), after the local tables, so both keep the same columns.

-- Violations: seats are averaged over time (a number, no longer a whole count); per-user
-- allowance violations name the user ('' for pooled ones).
ALTER TABLE {table:violations}
    MODIFY COLUMN seats Float64,
    ADD COLUMN IF NOT EXISTS user_id String DEFAULT '' AFTER seats;

-- Enforcement: each strike's metric, period, observed, limit, excess and unit (JSON array, as
-- the record carries it), and a throttle action's end (NULL otherwise).
ALTER TABLE {table:enforcement}
    ADD COLUMN IF NOT EXISTS metrics String DEFAULT '[]' AFTER strikes,
    ADD COLUMN IF NOT EXISTS until Nullable(DateTime64(3, 'UTC')) AFTER metrics;
