"""A record the real broker refuses is reported, not swallowed: BrokerError on flush."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from fairuse.errors import BrokerError
from fairuse.kafka import client_kwargs
from fairuse.recorder.client import ProducerTuning, RecorderClient
from fairuse.settings import KafkaSettings
from kafka_support import scaled_s

MAX_MESSAGE_BYTES = 4096


async def create_small_events_topic(settings: KafkaSettings) -> None:
    """The events topic alone, refusing record batches over ``MAX_MESSAGE_BYTES``."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        topic = settings.topic("events")
        configs = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
        await admin.create_topics([NewTopic(topic, 2, 1, topic_configs=configs)])
        deadline = time.monotonic() + scaled_s(40)
        while True:
            found = await admin.describe_topics([topic])
            partitions = found[0]["partitions"] if found[0]["error_code"] == 0 else []
            if partitions and all(p["leader"] >= 0 for p in partitions):
                return
            assert time.monotonic() < deadline, "topic has no leaders"
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


def test_a_refused_record_raises_broker_error_and_the_client_goes_on(
    kafka_bootstrap: str,
) -> None:
    settings = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:12]}.")
    asyncio.run(create_small_events_topic(settings))

    async def run() -> RecorderClient:
        tuning = ProducerTuning(compression=None, linger_ms=0)
        async with RecorderClient(settings, tuning) as client:
            await client.send_raw(b"acme", b'{"small": 1}')
            await client.flush()
            await client.send_raw(b"acme", os.urandom(4 * MAX_MESSAGE_BYTES))
            with pytest.raises(BrokerError, match="MessageSizeTooLarge"):
                await client.flush()
            await client.send_raw(b"globex", b'{"small": 2}')
        return client

    client = asyncio.run(run())
    assert (client.sent, client.delivered, client.failed) == (3, 2, 1)
