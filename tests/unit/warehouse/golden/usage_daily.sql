SELECT day, metric, amount, unit, raw_hours, sessions, users
FROM
(
    SELECT day, metric,
           sum(weighted_ms) / 3600000 AS amount, 'hours' AS unit,
           sum(raw_ms) / 3600000 AS raw_hours,
           uniqExact(session_id) AS sessions, uniqExact(user_id) AS users
    FROM usage FINAL
    WHERE tenant_id = {tenant:String} AND day >= {start:Date} AND day < {end:Date}
    GROUP BY day, metric
    UNION ALL
    SELECT day, 'api_calls' AS metric,
           toFloat64(sum(calls)) AS amount, 'calls' AS unit,
           0 AS raw_hours, 0 AS sessions, 0 AS users
    FROM
    (
        SELECT toDate(any(ts), {timezone:String}) AS day, any(api_count) AS calls
        FROM events
        WHERE tenant_id = {tenant:String} AND type = 'api_call'
          AND ts >= toDateTime64({start:Date}, 3, 'UTC') - INTERVAL 1 DAY
          AND ts < toDateTime64({end:Date}, 3, 'UTC') + INTERVAL 1 DAY
        GROUP BY event_id
    )
    WHERE day >= {start:Date} AND day < {end:Date}
    GROUP BY day
)
ORDER BY day, metric