SELECT tenant_id, ts, kind, action, effective_at, length(strikes) AS strikes, enforcement_id
FROM enforcement FINAL
WHERE ts >= toDateTime64({start:Date}, 3, 'UTC') AND ts < toDateTime64({end:Date}, 3, 'UTC')
ORDER BY tenant_id, ts, kind