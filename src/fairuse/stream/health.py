"""The worker's ``/metrics``, ``/healthz`` and ``/readyz``, and the hooks that feed its metrics.

:class:`WorkerProbe` registers the three pages on the worker's Faust web server, a timer that
reads the group's consumer lag every ``FAIRUSE_METRICS_LAG_INTERVAL_S``, a Faust sensor that
counts the bytes of state records sent to the changelog, and rebalance receivers. The agent
calls :meth:`WorkerProbe.batch_started` before a batch and :meth:`WorkerProbe.batch_sent` once
the batch's completion task exists; the batch is recorded when that task has committed its
offsets. ``/readyz`` is 200 once the worker has its partitions (a rebalance is not running),
table recovery has finished and a policy is loaded; 503 before, with the failing conditions.
With ``FAIRUSE_METRICS_ENABLED=false`` nothing is recorded and ``/metrics`` answers 404.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faust.sensors import Sensor

from fairuse.health import METRICS_HEADERS, metrics_text, readiness
from fairuse.settings import Settings
from fairuse.stream.core import Batch, Inbound
from fairuse.stream.metrics import BatchTally, WorkerMetrics, tally
from fairuse.topics import consumer_lag_async

if TYPE_CHECKING:
    from fairuse.stream.app import Worker

log = logging.getLogger(__name__)


class _ChangelogSensor(Sensor):
    """Reports every record Faust sends to the tenants' changelog topic to the probe."""

    def __init__(self, topic: str, written: Callable[[Any, int | None], None]) -> None:
        super().__init__()
        self.topic = topic
        self._written = written

    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> Any:
        if topic == self.topic:
            self._written(message.key, None if message.value is None else valsize)
        return None


@dataclass(slots=True)
class BatchMark:
    """Where a batch started: the time and the ledger's duplicate counter."""

    started_s: float
    event_id_duplicates: int


class WorkerProbe:
    """Health pages and metrics of one worker (see the module docstring)."""

    def __init__(self, worker: Worker, settings: Settings) -> None:
        self._worker = worker
        self._prefix = settings.kafka.topic_prefix
        self._assigned_once = False
        self.metrics = WorkerMetrics() if settings.ops.metrics_enabled else None
        app = worker.app
        changelog = worker.table.changelog_topic.get_topic_name()
        self._sensor = _ChangelogSensor(changelog, self.changelog_written)
        self._changelog_sent = 0  # bytes written to the changelog since the last batch recorded
        self._state_sizes: dict[Any, int] = {}
        self._register_pages()
        app.on_partitions_assigned.connect(self._on_assigned)
        app.on_partitions_revoked.connect(self._on_revoked)
        if self.metrics is not None:
            app.sensors.add(self._sensor)
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

    def changelog_written(self, key: Any, size: int | None) -> None:
        """A state record of ``size`` bytes was sent for ``key`` (None: a tombstone)."""
        if size is None:
            self._state_sizes.pop(key, None)
            return
        self._changelog_sent += size
        self._state_sizes[key] = size

    def batch_started(self) -> BatchMark | None:
        """Mark the start of a batch (None when metrics are off)."""
        if self.metrics is None:
            return None
        core = self._worker.core
        return BatchMark(time.perf_counter(), core.ledger.duplicates)

    def batch_sent(
        self, mark: BatchMark | None, messages: Sequence[Inbound], batch: Batch
    ) -> Callable[[asyncio.Future[Any]], None]:
        """Count the processed batch now; the returned callback records it once its
        completion task (acknowledgements and offset commit) has succeeded."""
        metrics = self.metrics
        if metrics is None or mark is None:
            return _ignore
        core = self._worker.core
        counts = tally(messages, batch.outputs, self._prefix)
        event_id_duplicates = core.ledger.duplicates - mark.event_id_duplicates
        redelivered = batch.skipped

        def done(task: asyncio.Future[Any]) -> None:
            if task.cancelled() or task.exception() is not None:
                return  # not committed: the batch is processed again
            self._record(metrics, mark, counts, event_id_duplicates, redelivered)

        return done

    def _record(
        self,
        metrics: WorkerMetrics,
        mark: BatchMark,
        counts: BatchTally,
        event_id_duplicates: int,
        redelivered: int,
    ) -> None:
        metrics.batch_done(
            counts,
            redelivered=redelivered,
            event_id_duplicates=event_id_duplicates,
            state_bytes=sum(self._state_sizes.values()),
            changelog_bytes=self._changelog_sent,
            duration_s=time.perf_counter() - mark.started_s,
        )
        self._changelog_sent = 0

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


def _ignore(task: asyncio.Future[Any]) -> None:
    return None
