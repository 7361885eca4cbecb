SELECT metric, sum(weighted_ms) / 3600000 AS observed, 'hours' AS unit,
       sum(raw_ms) / 3600000 AS raw_hours,
       uniqExact(session_id) AS sessions, uniqExact(user_id) AS users, uniqExact(day) AS days
FROM usage FINAL
WHERE tenant_id = {tenant:String} AND day >= {start:Date} AND day < {end:Date}
GROUP BY metric
ORDER BY metric