SELECT period, metric, status, observed, `limit`, unit, seats, policy_revision, ts, violation_id
FROM violations FINAL
WHERE tenant_id = {tenant:String} AND ({month:String} = '' OR startsWith(period, {month:String}))
ORDER BY ts, metric, period, status