SELECT tenant_id, metric, raw.hours AS accrued_hours, agg.hours AS aggregate_hours,
       agg.hours - raw.hours AS difference_hours
FROM
(
    SELECT tenant_id, metric, sum(weighted_ms) / 3600000 AS hours
    FROM usage FINAL
    WHERE day >= {start:Date} AND day < {end:Date}
    GROUP BY tenant_id, metric
) AS raw
FULL OUTER JOIN
(
    SELECT tenant_id, metric, sum(weighted_ms) / 3600000 AS hours
    FROM usage_daily
    WHERE day >= {start:Date} AND day < {end:Date}
    GROUP BY tenant_id, metric
) AS agg USING (tenant_id, metric)
WHERE abs(agg.hours - raw.hours) > 0.000001
ORDER BY abs(difference_hours) DESC