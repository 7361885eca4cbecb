"""``fairuse ingest``: the HTTP front door of the events topic (JSON, NDJSON and CloudEvents)."""
