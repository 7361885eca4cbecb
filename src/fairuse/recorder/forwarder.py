"""Delivers a :class:`~fairuse.recorder.spool.Spool` to Kafka in spool order, then deletes it.

One batch at a time: the batch's records go out through a plain (spool-less) recorder client
(idempotent producer, ``acks="all"``) and the spool acknowledges them only once the broker did.
A failed batch (or one not acknowledged within ``delivery_timeout_s``: the idempotent producer
itself never gives up) stays spooled, its producer is abandoned, and it is sent again after a
backoff on a fresh producer, so a tenant's records reach its partition in spool order (a retried
batch may repeat records the broker already had: same bytes, same ``event_id``, which the ledger
drops as duplicates).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from fairuse.errors import BrokerError
from fairuse.recorder.spool import SPOOL_DELIVERED, SPOOL_FAILED, Spool
from fairuse.settings import KafkaSettings

if TYPE_CHECKING:
    from fairuse.recorder.client import RecorderClient

log = logging.getLogger(__name__)


class SpoolForwarder:
    """The background delivery task of a spooling :class:`RecorderClient`."""

    def __init__(
        self, spool: Spool, connect: Callable[[], RecorderClient], *, settings: KafkaSettings
    ) -> None:
        self.spool = spool
        self._connect = connect  # () -> a new plain (spool-less) RecorderClient
        self.settings = settings
        self.delivered = 0
        self.failed = 0
        self.last_error: str | None = None
        self.crashed: BaseException | None = None
        self._client: RecorderClient | None = None
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._label = str(spool.directory)

    def start(self) -> None:
        """Start delivering (and, with ``fsync="interval"``, the periodic fsync)."""
        self._tasks.append(asyncio.create_task(self._deliver(), name="fairuse-spool-delivery"))
        if self.spool.options.fsync == "interval":
            self._tasks.append(asyncio.create_task(self._sync(), name="fairuse-spool-fsync"))

    def wake(self) -> None:
        """New records were spooled."""
        self._wake.set()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds (checked after each acknowledged batch).

        Raises BrokerError if delivery stopped on an unexpected error (a bug or a spool file
        that cannot be read): the spool is kept, waiting would be forever.
        """
        async with self._progress:
            await self._progress.wait_for(lambda: self.crashed is not None or condition())
        if self.crashed is not None:
            raise BrokerError(f"spool delivery stopped: {self.crashed!r}") from self.crashed

    async def stop(self) -> None:
        """Stop delivering; what is not acknowledged stays in the spool."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self._disconnect()

    async def _sync(self) -> None:
        while True:
            await asyncio.sleep(self.spool.options.fsync_interval_ms / 1000)
            self.spool.sync()

    async def _deliver(self) -> None:
        try:
            await self._deliver_forever()
        except Exception as exc:
            log.exception("spool %s: delivery stopped", self._label)
            self.crashed = exc
            async with self._progress:
                self._progress.notify_all()

    async def _deliver_forever(self) -> None:
        backoff = 0.1
        while True:
            batch = self.spool.read_batch()
            if batch is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                async with asyncio.timeout(self.spool.options.delivery_timeout_s):
                    client = await self._connected()
                    await client.send_many_raw((r.key, r.payload) for r in batch.records)
                    await client.flush()
            except (BrokerError, TimeoutError) as exc:
                self._failed(len(batch.records), exc)
                await self._disconnect()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.spool.options.retry_backoff_max_s)
                continue
            if self.last_error is not None:
                log.warning("spool %s: delivering again after %s", self._label, self.last_error)
                self.last_error = None
            backoff = 0.1
            self.spool.acknowledge(batch)
            self.delivered += len(batch.records)
            SPOOL_DELIVERED.labels(self._label).inc(len(batch.records))
            async with self._progress:
                self._progress.notify_all()

    def _failed(self, records: int, exc: Exception) -> None:
        self.failed += records
        SPOOL_FAILED.labels(self._label).inc(records)
        if self.last_error is None:
            log.warning(
                "spool %s: cannot deliver to Kafka at %s (%s); records stay spooled and are "
                "retried",
                self._label,
                self.settings.bootstrap,
                exc or "not acknowledged in time",
            )
        self.last_error = str(exc) or "not acknowledged in time"

    async def _connected(self) -> RecorderClient:
        if self._client is None:
            client = self._connect()
            await client.start()
            self._client = client
        return self._client

    async def _disconnect(self) -> None:
        """Drop the producer without delivering what it holds (the spool still has it)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(BrokerError):
                await client.abort()
