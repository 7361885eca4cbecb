SELECT record_ts, kind, record_id, channel, target,
       multiIf(reached, 'delivered', dead, 'dead_lettered', cancelled, 'cancelled',
               'retrying') AS state,
       if(reached, first_delivered_at, NULL) AS delivered_at,
       attempts, first_attempt_at, last_status, last_error
FROM
(
    SELECT record_ts, kind, record_id, channel, target,
           count() AS attempts, min(attempted_at) AS first_attempt_at,
           countIf(outcome = 'delivered') > 0 AS reached,
           minIf(attempted_at, outcome = 'delivered') AS first_delivered_at,
           max(gave_up) AS dead, countIf(outcome = 'cancelled') > 0 AS cancelled,
           argMax(status, attempted_at) AS last_status, argMax(error, attempted_at) AS last_error
    FROM notifications FINAL
    WHERE tenant_id = {tenant:String}
      AND record_ts >= toDateTime64({start:Date}, 3, 'UTC')
      AND record_ts < toDateTime64({end:Date}, 3, 'UTC')
      AND ({kind:String} = '' OR kind = {kind:String} OR startsWith(kind, {family:String}))
    GROUP BY record_ts, kind, record_id, channel, target
)
ORDER BY record_ts, record_id, channel, target