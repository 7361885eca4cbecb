SELECT event_id, ts, raw
FROM events
WHERE tenant_id = {tenant:String} AND type = 'usage_notice'
ORDER BY ts, event_id
LIMIT 1 BY event_id