"""The notifier service: consume records, persist their deliveries, deliver, retry, log.

Durability (docs/notifications.md#durability): a consumed record's deliveries are first written
as pending entries to the compacted ``notify-deliveries`` topic, into the partition with the
record's own partition number; only once the broker acknowledged them is the input offset
committed. Each delivery then runs as its own task; after a failed attempt its entry is replaced
by one with the next due time, and when it ends (delivered, dead-lettered, unsubscribed) by a
*done* marker. On every partition assignment the notifier reads its partitions of that topic
back and resumes every pending delivery, so a SIGKILL loses nothing: at worst an attempt that was
in flight is made again (same ``webhook-id``). The done markers also let a record that is read
again be recognised as already handled. Input topics are co-partitioned and assigned with the
range assignor, so one instance owns partition number ``p`` of every input topic and of the
state topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import replace
from typing import Any

import aiohttp
import aiosmtplib
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, KafkaError

from fairuse.errors import BrokerError
from fairuse.kafka import broker_errors, client_kwargs
from fairuse.notify import mail, retry, webhook
from fairuse.notify.deliveries import (
    Delivery,
    Final,
    attempt_record,
    dead_letter_json,
    delivery_key,
    done_marker,
    parse_state,
)
from fairuse.notify.kinds import identify
from fairuse.notify.subscriptions import SubscriptionFile, Target
from fairuse.notify.web import NotifierMetrics
from fairuse.settings import Settings
from fairuse.topics import describe_topics_async

log = logging.getLogger(__name__)

VIOLATION_CACHE = 100_000  # violations kept to detail the strikes of enforcement e-mails


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.notifier.release()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.notifier.resume({tp.partition for tp in assigned})


class Notifier:
    """``fairuse notify``: one instance of the notifier (see the module docstring)."""

    def __init__(self, settings: Settings, subscriptions: SubscriptionFile) -> None:
        self.settings = settings
        self.config = settings.notify
        self.subscriptions = subscriptions
        self.metrics = NotifierMetrics()
        kafka = settings.kafka
        self.inputs = [kafka.topic(name) for name in self.config.topics]
        self.state_topic = kafka.topic("notify-deliveries")
        self.log_topic = kafka.topic("notifications")
        self.dead_topic = kafka.topic("notify-dead-letter")
        self.known: dict[str, str] = {}  # delivery key -> "pending" or its final outcome
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.violations: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.assigned: set[int] = set()
        self.delivered = 0
        self._slots: dict[Target, asyncio.Semaphore] = {}
        self._producer: AIOKafkaProducer | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- readiness -------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Why the notifier is not ready (empty when it is)."""
        found = []
        if not self.assigned:
            found.append("no input partition assigned")
        if self.subscriptions.error:
            found.append(
                f"subscriptions file is bad (last good version in use): {self.subscriptions.error}"
            )
        return found

    # -- state ------------------------------------------------------------------------------
    async def release(self) -> None:
        """Stop every delivery task (their state is durable) and flush what they wrote."""
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.tasks.clear()
        self.known.clear()
        self.assigned = set()
        if self._producer is not None:
            await self._producer.flush()
        self.metrics.pending.set(0)

    async def resume(self, partitions: set[int]) -> None:
        """Read the state of ``partitions`` back and restart their pending deliveries."""
        if not partitions:
            return
        state = await self._read_state(partitions)
        pending = 0
        for key, (partition, value) in state.items():
            if isinstance(value, Delivery):
                if value.kind.startswith("violation."):
                    self._remember_violation(value.record)  # details for enforcement e-mails
                self.known[key] = "pending"
                self._start(partition, value)
                pending += 1
            else:
                self.known[key] = value
        self.assigned = set(partitions)
        log.info(
            "partitions %s: %d pending deliveries resumed, %d finished known",
            sorted(partitions),
            pending,
            len(state) - pending,
        )

    async def _read_state(self, partitions: set[int]) -> dict[str, tuple[int, Delivery | str]]:
        tps = [TopicPartition(self.state_topic, p) for p in sorted(partitions)]
        reader = AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs(self.settings.kafka))
        state: dict[str, tuple[int, Delivery | str]] = {}
        await reader.start()
        try:
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            ends = await reader.end_offsets(tps)
            todo = {tp for tp in tps if ends[tp] > 0}
            while todo:
                batch = await reader.getmany(*todo, timeout_ms=1000)
                for tp, messages in batch.items():
                    for message in messages:
                        key = message.key.decode() if message.key else ""
                        if message.value is None:
                            state.pop(key, None)
                            continue
                        value = parse_state(message.value)
                        if value is None:
                            log.error(
                                "skipping a foreign value in %s at %s/%d",
                                self.state_topic,
                                tp.partition,
                                message.offset,
                            )
                        else:
                            state[key] = (tp.partition, value)
                for tp in list(todo):
                    if await reader.position(tp) >= ends[tp]:
                        todo.discard(tp)
        finally:
            await reader.stop()
        return state

    def _start(self, partition: int, delivery: Delivery) -> None:
        task = asyncio.create_task(self._deliver(partition, delivery), name=delivery.key)
        self.tasks[delivery.key] = task
        task.add_done_callback(lambda t, key=delivery.key: self._ended(key, t))
        self.metrics.pending.set(len(self.tasks))

    def _ended(self, key: str, task: asyncio.Task[None]) -> None:
        if self.tasks.get(key) is task:
            del self.tasks[key]
        self.metrics.pending.set(len(self.tasks))
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery %s stopped: %r (it resumes after a restart)", key, task.exception())

    # -- intake -----------------------------------------------------------------------------
    def _remember_violation(self, record: dict[str, Any]) -> None:
        self.violations[record["violation_id"]] = record
        self.violations.move_to_end(record["violation_id"])
        while len(self.violations) > VIOLATION_CACHE:
            self.violations.popitem(last=False)

    async def intake(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Persist the deliveries of ``batch``, then start them (the caller commits after)."""
        assert self._producer is not None
        acks, new = [], []
        for tp, messages in batch.items():
            for message in messages:
                try:
                    record = orjson.loads(message.value)
                except orjson.JSONDecodeError:
                    record = None
                ref = identify(record)
                if ref is None:
                    log.warning(
                        "not a record the notifier knows, skipped: %s/%d/%d",
                        tp.topic,
                        tp.partition,
                        message.offset,
                    )
                    continue
                if ref.kind.startswith("violation."):
                    self._remember_violation(record)
                for target in self.subscriptions.current.targets_for(ref.tenant_id, ref.kind):
                    key = delivery_key(ref.record_id, target)
                    if key in self.known:
                        continue  # already pending or finished: a record published twice
                    delivery = Delivery(
                        key=key, record_id=ref.record_id, kind=ref.kind, tenant_id=ref.tenant_id,
                        record=record, published_at=message.timestamp,
                        subscription=target.subscription, channel=target.channel,
                        address=target.address, due_at=_now_ms(),
                    )  # fmt: skip
                    self.known[key] = "pending"
                    acks.append(await self._producer.send(
                        self.state_topic, delivery.to_json(), key=key.encode(),
                        partition=tp.partition,
                    ))  # fmt: skip
                    new.append((tp.partition, delivery))
        await asyncio.gather(*acks)
        for partition, delivery in new:
            self._start(partition, delivery)

    # -- delivery ---------------------------------------------------------------------------
    def _slot(self, target: Target) -> asyncio.Semaphore:
        if target not in self._slots:
            self._slots[target] = asyncio.Semaphore(self.config.target_concurrency)
        return self._slots[target]

    async def _attempt(self, delivery: Delivery) -> tuple[bool, str, str, bool]:
        """One attempt: (delivered, status, error, permanent failure)."""
        if delivery.channel == "webhook":
            key = self.subscriptions.current.webhook_key(delivery.subscription, delivery.address)
            assert self._session is not None
            if key is None:  # unsubscribed while this attempt waited for its slot
                return False, "", "target no longer subscribed", True
            payload = webhook.body(delivery.kind, delivery.record, delivery.published_at)
            try:
                status = await webhook.post(
                    self._session, delivery.address, key, delivery.record_id, payload
                )
            except (aiohttp.ClientError, OSError) as exc:
                return False, "", f"{type(exc).__name__}: {exc}", False
            ok = 200 <= status < 300
            return ok, str(status), "" if ok else f"HTTP {status}", False
        message = mail.compose(
            delivery.record, delivery.kind, sender=self.config.smtp_from,
            recipient=delivery.address, prior_notice=self.config.prior_notice,
            cited=self.violations, record_id=delivery.record_id,
        )  # fmt: skip
        try:
            reply = await mail.send(message, self.config)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            return False, f"{refused.code} {refused.message}", str(refused), refused.code >= 500
        except aiosmtplib.SMTPResponseException as exc:
            return False, f"{exc.code} {exc.message}", str(exc), exc.code >= 500
        except (aiosmtplib.SMTPException, OSError) as exc:
            return False, "", f"{type(exc).__name__}: {exc}", False
        return True, reply, "", False

    async def _log(self, delivery: Delivery, **fields: Any) -> None:
        assert self._producer is not None
        entry = attempt_record(delivery, attempted_at=_now_ms(), **fields)
        await self._producer.send_and_wait(
            self.log_topic, entry.to_json(), key=delivery.tenant_id.encode()
        )

    async def _finish(self, partition: int, delivery: Delivery, final: Final) -> None:
        assert self._producer is not None
        await self._producer.send_and_wait(
            self.state_topic, done_marker(delivery.key, final, _now_ms()),
            key=delivery.key.encode(), partition=partition,
        )  # fmt: skip
        self.known[delivery.key] = final

    async def _deliver(self, partition: int, delivery: Delivery | None) -> None:
        """Attempt ``delivery`` until it is delivered, dead-lettered or unsubscribed. A failing
        write to Kafka does not end it: the step is tried again (at least once)."""
        while delivery is not None:
            wait_ms = delivery.due_at - _now_ms()
            if wait_ms > 0:
                await asyncio.sleep(wait_ms / 1000)
            try:
                delivery = await self._step(partition, delivery)
            except KafkaError as exc:
                log.warning("delivery %s: Kafka write failed (%r); again in 5 s", delivery.key, exc)
                await asyncio.sleep(5)

    async def _step(self, partition: int, delivery: Delivery) -> Delivery | None:
        """One attempt and its records; the delivery's next state, or None when it is over."""
        assert self._producer is not None
        if not self.subscriptions.current.has_target(delivery.target):
            await self._log(delivery, outcome="cancelled", status="", latency_ms=0.0,
                            error="target no longer subscribed", gave_up=False)  # fmt: skip
            await self._finish(partition, delivery, "cancelled")
            return None
        async with self._slot(delivery.target):
            started = time.perf_counter()
            ok, status, error, permanent = await self._attempt(delivery)
            latency_ms = (time.perf_counter() - started) * 1000
        now, channel = _now_ms(), delivery.channel
        self.metrics.attempts.labels(channel, "delivered" if ok else "failed").inc()
        if ok:
            self.metrics.latency.labels(channel).observe(
                max(0.0, (now - delivery.published_at) / 1000)
            )
            await self._log(delivery, outcome="delivered", status=status, latency_ms=latency_ms,
                            error="", gave_up=False)  # fmt: skip
            await self._finish(partition, delivery, "delivered")
            self.delivered += 1
            return None
        first = delivery.first_attempt_at or now
        retry_at = now + int(retry.next_delay_s(self.config, delivery.attempts + 1) * 1000)
        gave_up = permanent or retry.gives_up(self.config, first, retry_at)
        await self._log(delivery, outcome="failed", status=status, latency_ms=latency_ms,
                        error=error, gave_up=gave_up)  # fmt: skip
        following = replace(delivery, attempts=delivery.attempts + 1, first_attempt_at=first,
                            due_at=retry_at, last_error=error)  # fmt: skip
        if gave_up:
            await self._producer.send_and_wait(
                self.dead_topic, dead_letter_json(following, error, now),
                key=delivery.tenant_id.encode(),
            )  # fmt: skip
            self.metrics.dead_lettered.labels(channel).inc()
            log.warning(
                "delivery of %s %s to %s %s dead-lettered after %d attempts: %s", delivery.kind,
                delivery.record_id, channel, delivery.address, following.attempts, error,
            )  # fmt: skip
            await self._finish(partition, delivery, "dead_lettered")
            return None
        await self._producer.send_and_wait(
            self.state_topic, following.to_json(), key=delivery.key.encode(), partition=partition
        )
        return following

    # -- the loop ---------------------------------------------------------------------------
    async def _check_topics(self) -> None:
        needed = [*self.inputs, self.state_topic, self.log_topic, self.dead_topic]
        found = await describe_topics_async(self.settings.kafka, needed)
        missing = [t for t in needed if t not in found]
        if missing:
            raise BrokerError(
                f"missing topic(s) {', '.join(missing)}: run `fairuse topics create` first"
            )

    async def _refresh_subscriptions(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.subscriptions.refresh()
            self.metrics.subscriptions_error.set(1 if self.subscriptions.error else 0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.reload_interval_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume and deliver until ``stop`` is set; delivery tasks are then cancelled (their
        state is durable) and the offsets of everything persisted are committed."""
        kafka = self.settings.kafka
        await self._check_topics()
        self._producer = AIOKafkaProducer(
            acks="all", enable_idempotence=True, linger_ms=5, **client_kwargs(kafka)
        )
        consumer = AIOKafkaConsumer(
            group_id=self.config.group_id,
            enable_auto_commit=False,
            auto_offset_reset=self.config.offset_reset,
            isolation_level="read_committed",
            partition_assignment_strategy=(RangePartitionAssignor,),
            **client_kwargs(kafka),
        )
        timeout = aiohttp.ClientTimeout(total=self.config.http_timeout_s)
        refresher = asyncio.create_task(self._refresh_subscriptions(stop))
        try:
            with broker_errors(kafka):
                await self._producer.start()
                await consumer.start()
            consumer.subscribe(self.inputs, listener=_Rebalance(self))
            async with aiohttp.ClientSession(timeout=timeout) as session:
                self._session = session
                while not stop.is_set():
                    batch = await consumer.getmany(timeout_ms=200, max_records=500)
                    if not batch:
                        continue
                    await self.intake(batch)
                    offsets = {tp: messages[-1].offset + 1 for tp, messages in batch.items()}
                    try:
                        await consumer.commit(offsets)
                    except (CommitFailedError, KafkaError) as exc:
                        log.warning(
                            "commit failed (%s); the records are read again and "
                            "recognised by their delivery state",
                            exc,
                        )
                await self.release()
        finally:
            stop.set()
            await refresher
            await consumer.stop()
            await self._producer.stop()
