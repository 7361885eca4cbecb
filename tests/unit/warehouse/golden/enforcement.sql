SELECT ts, kind, action, effective_at, length(strikes) AS strikes, enforcement_id
FROM enforcement FINAL
WHERE tenant_id = {tenant:String}
ORDER BY ts, kind