"""The notifier (``fairuse notify``): delivers violations, enforcement steps (and, once published,
statements and adjustments) to each tenant's subscribers by signed webhook and e-mail, with
durable retries, dead letters and a delivery log. See docs/notifications.md."""
