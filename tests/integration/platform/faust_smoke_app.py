"""A tiny Faust app for the broker smoke test: counts values per key in a changelog Table.

Run as a worker subprocess: ``python faust_smoke_app.py worker``; configured by environment:
``SMOKE_BOOTSTRAP``, ``SMOKE_APP_ID``, ``SMOKE_IN``, ``SMOKE_OUT``, ``SMOKE_PARTITIONS``,
``SMOKE_GUARANTEE`` (``at_least_once`` or ``exactly_once``).
For each input record (key = tenant) it adds one to ``counts[key]`` and sends
``"<key>:<count>"`` to the output topic, keyed the same.
"""

from __future__ import annotations

import os

import faust

app = faust.App(
    os.environ["SMOKE_APP_ID"],
    broker=f"kafka://{os.environ['SMOKE_BOOTSTRAP']}",
    store="memory://",
    topic_partitions=int(os.environ["SMOKE_PARTITIONS"]),
    topic_replication_factor=1,
    web_enabled=False,
    producer_acks=-1,
    processing_guarantee=os.environ.get("SMOKE_GUARANTEE", "at_least_once"),
    consumer_auto_offset_reset="earliest",
)
source = app.topic(os.environ["SMOKE_IN"], key_serializer="raw", value_serializer="raw")
sink = app.topic(os.environ["SMOKE_OUT"], key_serializer="raw", value_serializer="raw")
counts = app.Table("counts", default=int, key_type=str, value_type=int)


@app.agent(source)
async def count(stream: faust.StreamT) -> None:
    async for key, _value in stream.items():
        tenant = key.decode()
        counts[tenant] += 1
        await sink.send(key=key, value=f"{tenant}:{counts[tenant]}".encode())


if __name__ == "__main__":
    app.main()
