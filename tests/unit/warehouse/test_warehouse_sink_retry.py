"""The sink's flush order, its retry of transient failures and its stop on a rejected batch
(fake client and consumer)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from fairuse.settings import KafkaSettings, Settings, WarehouseSettings
from fairuse.warehouse.batching import Batcher, decode_plan
from fairuse.warehouse.sink import Backoff, BatchWriter, Sink, SinkHalted
from fairuse.warehouse.sink_metrics import SinkMetrics

EVENT = b'{"type":"api_call","event_id":"e%d","tenant_id":"t","ts":1793577600000,"count":1}'


class FlakyClient:
    """Fails the first ``failures`` inserts, then stores; records every attempt."""

    def __init__(
        self,
        failures: int,
        log: list[tuple[str, Any]] | None = None,
        error: Exception | None = None,
    ) -> None:
        self.failures = failures
        self.error = error or ConnectionError("Connection refused")
        self.attempts: list[tuple[str, str]] = []
        self.stored: dict[str, list[list[Any]]] = {}
        self.log = log if log is not None else []

    def insert(self, table: str, columns: list[list[Any]], **kwargs: Any) -> None:
        settings = kwargs["settings"]
        assert kwargs["column_oriented"] is True and settings["async_insert"] == 0
        token = settings["insert_deduplication_token"]
        self.attempts.append((table, token))
        if self.failures:
            self.failures -= 1
            raise self.error
        self.stored.setdefault(token, columns)
        self.log.append(("insert", token))


def _batches(count: int, per_batch: int = 3):
    batcher = Batcher({"ev": "events"}, max_rows=per_batch, max_ms=10**9)
    for n in range(count * per_batch):
        batcher.add("ev", n % 2, n // 2, EVENT % n, 0.0)
    return batcher.due(0.0, drain=True)


def test_a_failing_clickhouse_is_retried_with_capped_backoff_and_nothing_is_lost() -> None:
    client, delays = FlakyClient(failures=6), []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    writer = BatchWriter(client, sleep=fake_sleep, backoff=Backoff(initial_s=0.5, max_s=4.0))
    batches = _batches(2)

    async def run() -> None:
        for batch in batches:
            await writer.write(batch)

    asyncio.run(run())
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert writer.failures == 6 and writer.inserted_rows == 6
    first_token = batches[0].token("events")
    assert client.attempts[:7] == [("events", first_token)] * 7  # the same block every time
    assert set(client.stored) == {b.token("events") for b in batches}


class FakeConsumer:
    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.log = log

    async def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        self.log.append(
            ("commit", {(tp.topic, tp.partition): tuple(m) for tp, m in offsets.items()})
        )


def _sink(client: Any, log: list, after_insert: Any = None, metrics: Any = None) -> Sink:
    settings = Settings(kafka=KafkaSettings(topic_prefix="x."), warehouse=WarehouseSettings())
    sink = Sink(settings, client, after_insert=after_insert, metrics=metrics)
    sink._consumer = FakeConsumer(log)  # type: ignore[assignment]
    return sink


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("Network Error: connection reset"),  # the driver's, no code
        DatabaseError("Code: 241. Memory limit exceeded", code=241),
        DatabaseError("Code: 252. Too many parts", code=252),
        TimeoutError("timed out"),
    ],
)
def test_transient_errors_are_retried_by_code(error: Exception) -> None:
    client, delays = FlakyClient(failures=2, error=error), []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    metrics = SinkMetrics()
    writer = BatchWriter(client, sleep=fake_sleep, metrics=metrics)
    batch = _batches(1)[0]
    asyncio.run(writer.write(batch))
    assert len(delays) == 2 and writer.inserted_rows == batch.count and not writer.failing
    assert metrics.insert_failures.labels("events", "retried")._value.get() == 2
    assert metrics.rows.labels("events")._value.get() == batch.count


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (DatabaseError("Code: 53. Type mismatch in column ts", code=53), "code 53"),
        (DatabaseError("Code: 16. No such column source", code=16), "code 16"),
        (TypeError("int() argument must be a string, not 'NoneType'"), "int() argument"),
    ],
)
def test_a_schema_or_type_error_stops_the_sink_and_commits_nothing_past_the_good_batch(
    error: Exception, shown: str
) -> None:
    log: list[tuple[str, Any]] = []
    client = FlakyClient(failures=0, log=log)
    metrics = SinkMetrics()
    sink = _sink(client, log, metrics=metrics)
    good, bad = _batches(2, per_batch=3)[:2]  # one batch per partition
    asyncio.run(sink.flush([good]))
    client.failures, client.error = 1, error
    with pytest.raises(SinkHalted) as halted:
        asyncio.run(sink.flush([bad]))
    message = str(halted.value)
    assert shown in message and f"partition {bad.partition}" in message
    assert f"offsets {bad.first}-{bad.last}" in message and "stopped" in message
    assert len(client.attempts) == 2  # the rejected block was not tried again
    commits = [entry[1] for entry in log if entry[0] == "commit"]
    tp_bad = (bad.topic, bad.partition)
    # The good batch is committed past its end; the bad one only at its first offset (plan).
    assert commits[1][(good.topic, good.partition)] == (good.last + 1, "")
    assert commits[-1][tp_bad][0] == bad.first and len(commits) == 3
    assert sink.committed_messages == good.count
    assert metrics.insert_failures.labels("events", "fatal")._value.get() == 1


def test_flush_order_plan_then_insert_then_commit() -> None:
    log: list[tuple[str, Any]] = []
    sink = _sink(FlakyClient(0, log), log)
    batches = _batches(2, per_batch=2)  # partitions 0 and 1
    asyncio.run(sink.flush(batches))
    kinds = [entry[0] for entry in log]
    assert kinds == ["commit", "insert", "insert", "commit"]
    plan, final = log[0][1], log[3][1]
    for batch in batches:
        tp = (batch.topic, batch.partition)
        assert plan[tp][0] == batch.first and decode_plan(plan[tp][1]) == [batch.last]
        assert final[tp] == (batch.last + 1, "")
    assert sink.committed_messages == 4


def test_the_fault_seam_runs_after_the_inserts_and_before_the_commit() -> None:
    log: list[tuple[str, Any]] = []

    class Crashed(Exception):
        pass

    def crash(batches: list[Any]) -> None:
        log.append(("crash", len(batches)))
        raise Crashed

    sink = _sink(FlakyClient(0, log), log, after_insert=crash)
    with pytest.raises(Crashed):
        asyncio.run(sink.flush(_batches(1)))
    kinds = [entry[0] for entry in log]
    assert kinds == ["commit", "insert", "insert", "crash"]  # plan, both partitions, crash


def test_a_failed_commit_forgets_held_batches_and_rewinds_to_the_committed_offsets() -> None:
    from aiokafka.errors import CommitFailedError

    log: list[tuple[str, Any]] = []

    class RebalancedConsumer(FakeConsumer):
        def __init__(self) -> None:
            super().__init__(log)
            self.sought: dict[tuple[str, int], int] = {}

        async def commit(self, offsets: dict[TopicPartition, Any]) -> None:
            if any(m.metadata == "" for m in offsets.values()):  # the final commit fails
                raise CommitFailedError("group rebalanced")
            await super().commit(offsets)

        def assignment(self) -> set[TopicPartition]:
            return {TopicPartition("x.events", 0)}

        async def committed(self, tp: TopicPartition) -> int:
            return 3

        def seek(self, tp: TopicPartition, offset: int) -> None:
            self.sought[(tp.topic, tp.partition)] = offset

    client = FlakyClient(0, log)
    sink = _sink(client, log)
    consumer = RebalancedConsumer()
    sink._consumer = consumer  # type: ignore[assignment]
    plans_loaded: list[list[TopicPartition]] = []

    async def fake_load_plans(assigned: list[TopicPartition]) -> None:
        plans_loaded.append(assigned)

    sink.load_plans = fake_load_plans  # type: ignore[method-assign]
    sink.batcher.add("x.events", 0, 3, EVENT % 3, 0.0)
    batches = sink.batcher.due(0.0, drain=True)
    sink.batcher.add("x.events", 0, 4, EVENT % 4, 0.0)  # fetched while the flush ran

    async def run() -> bool:
        flushed = await sink._flush_due(batches)
        if not flushed:
            await sink._recover()
        return flushed

    assert asyncio.run(run()) is False
    assert sink.committed_messages == 0  # inserted but not committed: not counted
    assert sink.batcher.pending == 0  # offset 4 is forgotten too: it will be fetched again
    assert consumer.sought == {("x.events", 0): 3}
    assert plans_loaded == [[TopicPartition("x.events", 0)]]
