"""The sink's Prometheus metrics (``fairuse_sink_*``), on a registry of their own.

Labels are bounded: ``table`` (the warehouse's tables), ``topic`` (the five consumed topics,
without the prefix) and ``outcome``. docs/operations.md lists every series.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import Counter, Gauge, Histogram

from fairuse.health import new_registry
from fairuse.warehouse.rows import TABLE_COLUMNS, TOPIC_TABLES

INSERT_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class SinkMetrics:
    """Rows, insert timings, failures, commits and commit lag of one sink process."""

    def __init__(self) -> None:
        self.registry = reg = new_registry()
        self.rows = Counter(
            "fairuse_sink_rows",
            "Rows inserted into the warehouse, by table",
            ["table"],
            registry=reg,
        )
        self.insert_duration = Histogram(
            "fairuse_sink_insert_duration_seconds",
            "Duration of one successful insert of a batch into a table",
            ["table"],
            buckets=INSERT_SECONDS_BUCKETS,
            registry=reg,
        )
        self.insert_failures = Counter(
            "fairuse_sink_insert_failures",
            "Failed inserts, by table and outcome (retried: transient; fatal: the sink stopped)",
            ["table", "outcome"],
            registry=reg,
        )
        self.committed = Counter(
            "fairuse_sink_messages_committed",
            "Messages stored and their offsets committed, by topic",
            ["topic"],
            registry=reg,
        )
        self.commit_lag = Gauge(
            "fairuse_sink_commit_lag_messages",
            "Messages on the assigned partitions not yet stored and committed, by topic",
            ["topic"],
            registry=reg,
        )
        self.last_commit = Gauge(
            "fairuse_sink_last_commit_timestamp_seconds",
            "When the sink last committed offsets after storing a flush (seconds since the epoch)",
            registry=reg,
        )
        self.assigned_partitions = Gauge(
            "fairuse_sink_assigned_partitions", "Partitions assigned to this sink", registry=reg
        )
        self.ready = Gauge(
            "fairuse_sink_ready",
            "1 when /readyz answers 200 (connected to the warehouse, consuming)",
            registry=reg,
        )
        for table in TABLE_COLUMNS:
            self.rows.labels(table)
            for outcome in ("retried", "fatal"):
                self.insert_failures.labels(table, outcome)
        for topic in TOPIC_TABLES:
            self.committed.labels(topic)
            self.commit_lag.labels(topic)

    def lag(self, by_topic: Mapping[str, int], topics: Iterable[str]) -> None:
        """Set the commit lag of every topic in ``topics`` (0 where ``by_topic`` has none)."""
        for topic in topics:
            self.commit_lag.labels(topic).set(by_topic.get(topic, 0))
