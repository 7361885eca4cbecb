"""The worker's ``/metrics``, ``/healthz`` and ``/readyz``, and the hook that feeds its metrics.

:class:`WorkerProbe` registers the three pages on the worker's Faust web server, a timer that
reads the group's consumer lag every ``FAIRUSE_METRICS_LAG_INTERVAL_S``, and rebalance
receivers. It observes the worker's :class:`~fairuse.stream.delivery.BatchDelivery`: each part
of a batch is recorded once its transaction has committed (its events, outputs and state
records), before its writes reach the local store. ``/readyz`` is 200 once the worker has its
partitions (a rebalance is not running), table recovery has finished and a policy is loaded; 503
before, with the failing conditions. With ``FAIRUSE_METRICS_ENABLED=false`` nothing is recorded
and ``/metrics`` answers 404.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fairuse.health import METRICS_HEADERS, metrics_text, readiness
from fairuse.settings import Settings
from fairuse.stream.metrics import WorkerMetrics, tally
from fairuse.topics import consumer_lag_async

if TYPE_CHECKING:
    from fairuse.stream.app import Worker
    from fairuse.stream.delivery import Applied, PartitionBatch

log = logging.getLogger(__name__)


class WorkerProbe:
    """Health pages and metrics of one worker (see the module docstring)."""

    def __init__(self, worker: Worker, settings: Settings) -> None:
        self._worker = worker
        self._prefix = settings.kafka.topic_prefix
        self._assigned_once = False
        self.metrics = WorkerMetrics() if settings.ops.metrics_enabled else None
        self._state_bytes = 0  # bytes of the tenants' state records in the local store
        self._duplicates_seen = 0
        app = worker.app
        self._register_pages()
        app.on_partitions_assigned.connect(self._on_assigned)
        app.on_partitions_revoked.connect(self._on_revoked)
        if self.metrics is not None:
            interval = float(settings.ops.lag_interval_s)
            app.timer(interval=interval, name="fairuse.read-consumer-lag")(self._read_lag)

    def conditions(self) -> dict[str, bool]:
        """The readiness conditions, by name."""
        app = self._worker.app
        return {
            "partitions_assigned": self._assigned_once and not app.rebalancing,
            "recovery_finished": app.tables.recovery.completed.is_set() and not app.in_recovery,
            "policy_loaded": self._worker.policy_ready.is_set(),
        }

    def committed(
        self, parts: Sequence[PartitionBatch], applied: Sequence[Applied], duration_s: float
    ) -> None:
        """Record the committed ``parts`` of a batch (called before ``applied`` reaches the
        local store, whose current values give the size each write replaces)."""
        metrics = self.metrics
        if metrics is None:
            return
        worker = self._worker
        store = worker.tenants.data
        tenants_changelog = worker.tenants.changelog_topic.get_topic_name()
        changelog_bytes = 0
        for record in applied:
            if record.message.topic != tenants_changelog:
                continue
            old = store.get(record.key)
            self._state_bytes -= 0 if old is None else len(old)
            if record.value is not None:
                self._state_bytes += len(record.value)
                changelog_bytes += len(record.value)
        duplicates = worker.core.ledger.duplicates
        event_id_duplicates, self._duplicates_seen = duplicates - self._duplicates_seen, duplicates
        messages = [m for part in parts for m in part.messages]
        outputs = [o for part in parts for o in part.outputs]
        metrics.batch_done(
            tally(messages, outputs, self._prefix),
            redelivered=sum(part.skipped for part in parts),
            event_id_duplicates=event_id_duplicates,
            state_bytes=self._state_bytes,
            changelog_bytes=changelog_bytes,
            duration_s=duration_s,
        )

    async def _read_lag(self) -> None:
        worker, metrics = self._worker, self.metrics
        assert metrics is not None
        topic = worker.events_topic.get_topic_name()
        try:
            lag = await consumer_lag_async(
                worker.settings.kafka, worker.settings.worker.app_id, topic
            )
        except Exception as exc:  # the broker is away: keep the last figures
            log.warning("cannot read the consumer lag: %s", exc)
            return
        owned = worker.assigned_partitions()
        metrics.partition_lag({p: n for p, n in lag.items() if p in owned})

    async def _on_assigned(self, sender: Any, assigned: Any = None, **kwargs: Any) -> None:
        self._assigned_once = True
        if self.metrics is not None:
            self.metrics.assigned(self._worker.assigned_partitions())

    async def _on_revoked(self, sender: Any, revoked: Any = None, **kwargs: Any) -> None:
        if self.metrics is not None:
            self.metrics.assigned(self._worker.assigned_partitions())

    def _register_pages(self) -> None:
        # Faust calls a page handler as handler(view, request): plain functions, not methods.
        app, metrics = self._worker.app, self.metrics

        @app.page("/healthz")
        async def healthz(view: Any, request: Any) -> Any:
            return view.json({"alive": True})

        @app.page("/readyz")
        async def readyz(view: Any, request: Any) -> Any:
            status, body = readiness(self.conditions())
            return view.json(body, status=status)

        @app.page("/metrics")
        async def prometheus_metrics(view: Any, request: Any) -> Any:
            if metrics is None:
                return view.json({"error": "metrics are off (FAIRUSE_METRICS_ENABLED)"}, status=404)
            metrics.ready.set(1 if all(self.conditions().values()) else 0)
            return view.bytes(metrics_text(metrics.registry), headers=dict(METRICS_HEADERS))
