"""The ingest service's producer: idempotent, ``acks="all"``, replaced after a failure.

``produce`` returns only once the broker acknowledged every record, and raises
:class:`BrokerUnavailable` otherwise (not started yet, broker away, timeout). The idempotent
producer never expires a batch by itself (it retries until the broker takes it), so on a timeout
the gateway abandons the producer: its pending batches are failed, so they are not delivered
later behind the caller's back (a request answered 503 was not stored, unless the broker had
already taken it and only the answer was lost), and a new producer (a fresh producer id) is
started in the background; until it is up, ``produce`` fails fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from fairuse.errors import BrokerError
from fairuse.recorder.client import ProducerTuning, abandon, producer_config
from fairuse.settings import KafkaSettings

log = logging.getLogger(__name__)


class BrokerUnavailable(BrokerError):
    """Records were not (known to be) acknowledged; the caller should retry them later."""


class BrokerGateway:
    """Owns the producer; ``start()`` returns at once and connects in the background."""

    def __init__(self, kafka: KafkaSettings, timeout_ms: int) -> None:
        self.kafka = kafka
        self.topic = kafka.topic("events")
        self.timeout_s = timeout_ms / 1000
        self.tuning = ProducerTuning(
            linger_ms=2, request_timeout_ms=timeout_ms, client_id="fairuse-ingest"
        )
        self.last_error = "producer not started yet"
        self._producer: AIOKafkaProducer | None = None
        self._broken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        """Whether a producer is connected (what /readyz reports, with a metadata check)."""
        return self._producer is not None

    async def start(self) -> None:
        """Begin connecting (retried every second until the broker answers)."""
        self._task = asyncio.create_task(self._keep_producer(), name="fairuse-ingest-producer")

    async def _keep_producer(self) -> None:
        while True:
            producer = AIOKafkaProducer(**producer_config(self.kafka, self.tuning))
            try:
                await producer.start()
                cluster = await producer.client.fetch_all_metadata()
                if self.topic not in cluster.topics():
                    raise BrokerError(f"topic {self.topic} does not exist")
            except (KafkaError, OSError, BrokerError) as exc:
                self.last_error = f"cannot connect to Kafka at {self.kafka.bootstrap}: {exc!r}"
                with contextlib.suppress(KafkaError, OSError):
                    await producer.stop()
                await asyncio.sleep(1.0)
                continue
            log.info("ingest: producer connected to %s", self.kafka.bootstrap)
            self._broken.clear()
            self._producer = producer
            await self._broken.wait()
            self._producer = None
            with contextlib.suppress(KafkaError, OSError, BrokerError):
                await abandon(producer, BrokerUnavailable(self.last_error))

    async def produce(self, records: list[tuple[bytes, bytes]]) -> None:
        """Send ``(key, payload)`` records in order; return once all are acknowledged."""
        producer = self._producer
        if producer is None:
            raise BrokerUnavailable(self.last_error)
        try:
            async with asyncio.timeout(self.timeout_s + 5):
                deliveries = [
                    await producer.send(self.topic, payload, key=key) for key, payload in records
                ]
                await asyncio.gather(*deliveries)
        except (KafkaError, OSError, TimeoutError, BrokerError) as exc:
            if self._producer is producer:
                self.last_error = f"Kafka did not acknowledge: {exc!r}"
                log.warning("ingest: %s; restarting the producer", self.last_error)
                self._producer = None
                self._broken.set()  # the keeper abandons it and starts a new one
            raise BrokerUnavailable(self.last_error) from exc

    async def ready(self) -> tuple[bool, str]:
        """``(ready, why)``: a producer is up and the cluster answers a metadata request."""
        producer = self._producer
        if producer is None:
            return False, self.last_error
        try:
            async with asyncio.timeout(2.0):
                answered = await producer.client.force_metadata_update()
        except (KafkaError, OSError, TimeoutError) as exc:
            return False, f"Kafka does not answer: {exc!r}"
        return (True, "ok") if answered else (False, "Kafka does not answer a metadata request")

    async def stop(self) -> None:
        """Stop connecting and close the producer (requests are answered by then: aiohttp waits
        for them before cleanup; anything it still holds belongs to a request answered 503)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(KafkaError, OSError, BrokerError):
                await abandon(producer, BrokerUnavailable("ingest is stopping"))
