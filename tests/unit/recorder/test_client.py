"""RecorderClient without a broker: its producer config, backpressure, and surfaced failures."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, NotLeaderForPartitionError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from fairuse.errors import BrokerError, ConfigError
from fairuse.events import ApiCall, encode_event
from fairuse.recorder.client import ProducerTuning, RecorderClient, producer_config
from fairuse.settings import KafkaSettings

TOPIC = "fairuse.events"


def run_async(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run an async test body on a fresh event loop (no pytest plugin needed)."""

    @functools.wraps(test)
    def wrapper() -> None:
        asyncio.run(test())

    return wrapper


class FakeKafkaClient:
    """The producer's ``client``: cluster metadata listing ``topics``."""

    def __init__(self, topics: tuple[str, ...]) -> None:
        self._topics = set(topics)

    async def fetch_all_metadata(self) -> FakeKafkaClient:
        return self

    def topics(self) -> set[str]:
        return self._topics


class FakeProducer:
    """Just enough of AIOKafkaProducer: records sends; deliveries resolve when told to."""

    def __init__(self, fail_start: bool = False, topics: tuple[str, ...] = (TOPIC,)) -> None:
        self.fail_start = fail_start
        self.client = FakeKafkaClient(topics)
        self.started = self.stopped = False
        self.sent: list[tuple[str, bytes, bytes | None, int | None]] = []
        self.deliveries: list[asyncio.Future[Any]] = []
        self.flushed = 0

    async def start(self) -> None:
        if self.fail_start:
            raise KafkaConnectionError("no broker")
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        self.sent.append((topic, value, key, None))
        return self._delivery()

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(8))

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(300, 0)

    async def send_batch(
        self, batch: BatchBuilder, topic: str, *, partition: int
    ) -> asyncio.Future[Any]:
        self.sent.append((topic, b"<batch>", None, partition))
        return self._delivery()

    async def flush(self) -> None:
        self.flushed += 1
        self.deliver_all()

    def _delivery(self) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        self.deliveries.append(future)
        return future

    def deliver_all(self, error: Exception | None = None) -> None:
        for future in self.deliveries:
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)


def event(n: int, tenant: str = "tenant-001") -> ApiCall:
    return ApiCall(event_id=f"e{n}", tenant_id=tenant, ts=1_793_577_600_000 + n, count=1)


def test_producer_config_is_safe_and_tuned_for_throughput() -> None:
    config = producer_config(KafkaSettings(bootstrap="k:9092"), ProducerTuning())
    assert config["bootstrap_servers"] == "k:9092"
    assert config["acks"] == "all"
    assert config["enable_idempotence"] is True
    assert config["compression_type"] == "lz4"
    assert config["linger_ms"] > 0
    assert config["max_batch_size"] >= 256 * 1024


def test_producer_config_carries_sasl_ssl_settings(tmp_path: Any) -> None:
    settings = KafkaSettings(
        bootstrap="k:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="recorder",
        sasl_password="secret",
    )
    config = producer_config(settings, ProducerTuning(compression="zstd"))
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert config["sasl_plain_username"] == "recorder"
    assert config["sasl_plain_password"] == "secret"
    assert config["ssl_context"] is not None
    assert config["compression_type"] == "zstd"
    missing_ca = KafkaSettings(security_protocol="SSL", ssl_cafile=str(tmp_path / "none.pem"))
    with pytest.raises(ConfigError):
        producer_config(missing_ca, ProducerTuning())


def test_lz4_codec_is_installed() -> None:
    from aiokafka.codec import has_lz4

    assert has_lz4()


@run_async
async def test_send_encodes_keys_by_tenant_and_flushes_on_close() -> None:
    fake = FakeProducer()
    async with RecorderClient(KafkaSettings(), producer=fake) as client:  # type: ignore[arg-type]
        await client.send(event(1))
        await client.send(event(2, "tenant-002"))
    assert fake.sent == [
        (TOPIC, encode_event(event(1)), b"tenant-001", None),
        (TOPIC, encode_event(event(2, "tenant-002")), b"tenant-002", None),
    ]
    assert fake.flushed == 1 and fake.stopped
    assert client.delivered == 2 and client.failed == 0


@run_async
async def test_sends_wait_when_max_in_flight_are_unacknowledged() -> None:
    fake = FakeProducer()
    client = RecorderClient(KafkaSettings(), ProducerTuning(max_in_flight=2), producer=fake)  # type: ignore[arg-type]
    await client.start()
    await client.send(event(1))
    await client.send(event(2))
    third = asyncio.create_task(client.send(event(3)))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not third.done() and len(fake.sent) == 2
    fake.deliver_all()
    await asyncio.wait_for(third, 1)
    assert len(fake.sent) == 3
    await client.close()


@run_async
async def test_a_failed_delivery_raises_broker_error_on_flush_and_next_send() -> None:
    fake = FakeProducer()
    client = RecorderClient(KafkaSettings(), producer=fake)  # type: ignore[arg-type]
    await client.start()
    await client.send(event(1))
    fake.deliver_all(NotLeaderForPartitionError())
    await asyncio.sleep(0)
    with pytest.raises(BrokerError, match="1 record"):
        await client.send(event(2))
    await client.send(event(3))
    fake.deliver_all(NotLeaderForPartitionError())
    await asyncio.sleep(0)
    with pytest.raises(BrokerError, match="not delivered"):
        await client.flush()
    assert client.failed == 2
    await client.close()
    assert fake.stopped


@run_async
async def test_close_surfaces_failures_too() -> None:
    fake = FakeProducer()
    with pytest.raises(BrokerError):
        async with RecorderClient(KafkaSettings(), producer=fake) as client:  # type: ignore[arg-type]
            await client.send(event(1))
            fake.deliver_all(NotLeaderForPartitionError())
    assert fake.stopped


@run_async
async def test_unreachable_broker_is_a_broker_error() -> None:
    fake = FakeProducer(fail_start=True)
    with pytest.raises(BrokerError, match="cannot connect"):
        async with RecorderClient(KafkaSettings(), producer=fake):  # type: ignore[arg-type]
            pass
    assert fake.stopped


@run_async
async def test_a_missing_events_topic_is_a_broker_error_at_start() -> None:
    fake = FakeProducer(topics=("other",))
    with pytest.raises(BrokerError, match="fairuse topics create"):
        async with RecorderClient(KafkaSettings(), producer=fake):  # type: ignore[arg-type]
            pass
    assert fake.stopped


@run_async
async def test_sending_before_start_is_a_broker_error() -> None:
    with pytest.raises(BrokerError, match="not started"):
        await RecorderClient(KafkaSettings(), producer=FakeProducer()).send(event(1))  # type: ignore[arg-type]


@run_async
async def test_send_many_builds_batches_on_the_partition_send_would_pick() -> None:
    fake = FakeProducer()
    events = [event(n, f"tenant-{n % 3}") for n in range(30)]
    async with RecorderClient(KafkaSettings(), producer=fake) as client:  # type: ignore[arg-type]
        await client.send_many(events)
    partitioner = DefaultPartitioner()
    expected = {
        partitioner(f"tenant-{n}".encode(), list(range(8)), list(range(8))) for n in (0, 1, 2)
    }
    assert {partition for *_rest, partition in fake.sent} == expected
    assert len(fake.sent) > len(expected)  # 300-byte batches overflowed into more batches
    assert client.sent == client.delivered == 30


@run_async
async def test_send_many_never_holds_more_than_max_in_flight() -> None:
    fake = FakeProducer()
    client = RecorderClient(KafkaSettings(), ProducerTuning(max_in_flight=4), producer=fake)  # type: ignore[arg-type]
    await client.start()
    task = asyncio.create_task(client.send_many(event(n) for n in range(10)))
    for _ in range(10):
        await asyncio.sleep(0)
    assert not task.done()
    assert client.sent == 4  # the open batch was queued when room ran out
    while not task.done():
        fake.deliver_all()
        await asyncio.sleep(0)
    await task
    await client.close()
    assert client.delivered == 10


@run_async
async def test_a_batch_that_cannot_be_queued_gives_its_room_back() -> None:
    fake = FakeProducer()
    original = fake.send_batch
    calls = 0

    async def failing_once(batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KafkaConnectionError("broker gone")
        return await original(batch, topic, partition=partition)

    fake.send_batch = failing_once  # type: ignore[method-assign]
    client = RecorderClient(KafkaSettings(), ProducerTuning(max_in_flight=4), producer=fake)  # type: ignore[arg-type]
    await client.start()
    tenants = [event(n, f"tenant-{n}") for n in range(4)]  # several partitions, 4 permits
    with pytest.raises(BrokerError, match="could not queue a batch"):
        await client.send_many(tenants)
    fake.deliver_all()
    await asyncio.wait_for(client.send_many(tenants), 1)  # all 4 permits are free again
    await client.close()
    assert client.delivered == 4
