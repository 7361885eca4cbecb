SELECT tenant_id, metric, period, statement_id,
       sum(observed) AS observed, maxIf(`limit`, line = 'statement') AS `limit`,
       maxIf(seats, line = 'statement') AS seats, sum(excess) AS excess, any(unit) AS unit,
       sum(announced) AS announced, countIf(line = 'adjustment') AS adjustments,
       maxIf(policy_revision, line = 'statement') AS policy_revision,
       maxIf(closed_at, line = 'statement') AS closed_at
FROM
(
    SELECT 'statement' AS line, tenant_id, metric, period, statement_id, observed, `limit`,
           seats, excess, unit, announced, policy_revision, closed_at
    FROM statements FINAL
    WHERE startsWith(period, {month:String})
      AND ({tenant:String} = '' OR tenant_id = {tenant:String})
    UNION ALL
    SELECT 'adjustment' AS line, tenant_id, metric, period, statement_id,
           delta_observed AS observed, 0 AS `limit`, 0 AS seats, delta_excess AS excess,
           '' AS unit, delta_announced AS announced, '' AS policy_revision,
           toDateTime64(0, 3, 'UTC') AS closed_at
    FROM adjustments FINAL
    WHERE startsWith(period, {month:String})
      AND ({tenant:String} = '' OR tenant_id = {tenant:String})
)
GROUP BY tenant_id, metric, period, statement_id
HAVING countIf(line = 'statement') > 0
ORDER BY tenant_id, metric, period