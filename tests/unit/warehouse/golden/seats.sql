SELECT count() AS seats
FROM
(
    SELECT user_id, argMax(type, ts) AS last_change
    FROM events
    WHERE tenant_id = {tenant:String} AND type IN ('user_activated', 'user_deactivated')
      AND ts < toDateTime64({end:Date}, 3, 'UTC')
    GROUP BY user_id
)
WHERE last_change = 'user_activated'