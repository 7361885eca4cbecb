SELECT tenant_id, metric, period, status, observed, `limit`, unit, ts
FROM violations FINAL
WHERE startsWith(period, {month:String})
ORDER BY tenant_id, metric, period, status