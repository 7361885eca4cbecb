WITH
    usage_by_tenant AS
    (
        SELECT tenant_id, metric,
               sum(weighted_ms) / 3600000 AS hours, uniqExact(user_id) AS users
        FROM usage FINAL
        WHERE day >= {start:Date} AND day < {end:Date}
          AND ({metric:String} = '' OR metric = {metric:String})
        GROUP BY tenant_id, metric
    ),
    violations_by_tenant AS
    (
        SELECT tenant_id, metric,
               countIf(status = 'exceeded') AS exceeded, countIf(status = 'warning') AS warnings,
               countIf(status = 'excused') AS excused,
               max(observed / nullIf(`limit`, 0)) AS worst_ratio
        FROM violations FINAL
        WHERE startsWith(period, {month:String})
          AND ({metric:String} = '' OR metric = {metric:String})
        GROUP BY tenant_id, metric
    )
SELECT tenant_id, metric, v.exceeded AS exceeded, v.warnings AS warnings, v.excused AS excused,
       v.worst_ratio AS worst_ratio, u.hours AS hours, u.users AS users
FROM violations_by_tenant AS v
FULL OUTER JOIN usage_by_tenant AS u USING (tenant_id, metric)
ORDER BY exceeded DESC, worst_ratio DESC, hours DESC, tenant_id, metric
LIMIT {top:UInt32}