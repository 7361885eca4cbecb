SELECT user_id, metric, sum(weighted_ms) / 3600000 AS hours, uniqExact(day) AS active_days
FROM usage_daily_by_user
WHERE tenant_id = {tenant:String} AND day >= {start:Date} AND day < {end:Date}
GROUP BY user_id, metric
ORDER BY hours DESC, user_id, metric
LIMIT {top:UInt32}