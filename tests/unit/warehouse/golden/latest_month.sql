SELECT formatDateTime(greatest(
           (SELECT max(day) FROM usage),
           (SELECT toDate(max(ts)) FROM violations)), '%Y-%m') AS month