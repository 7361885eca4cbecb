"""BatchDelivery pipelined: a batch is processed while the previous one commits.

Transactions are faked (no broker): each partition's part is "committed" when its task runs,
so the next batch is always processed before the previous batch's writes reach the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any, cast

from test_core import KAFKA, TOPIC, messages, plain_ledger_outputs

from fairuse.policy import DEFAULT_POLICY
from fairuse.stream.core import Inbound, StreamCore, apply_writes
from fairuse.stream.delivery import (
    Applied,
    BatchDelivery,
    PartitionBatch,
    PartitionProducers,
    applied,
)


class Table(dict[str, bytes]):
    """A dict store with the table method the delivery applies committed writes through."""

    def apply_changelog_batch(self, batch: Iterable[Applied]) -> None:
        for record in batch:
            if record.value is None:
                self.pop(record.key, None)
            else:
                self[record.key] = record.value


class Producers:
    """Every partition owned, always."""

    async def assign(self, partitions: set[int]) -> None:
        return None

    def get(self, partition: int) -> object:
        return object()


class FakeTransactions(BatchDelivery):
    """Commits each part by applying its writes at a changelog offset, or fails the parts
    of the batches numbered in :attr:`failing` (counted from 1)."""

    published: list[Inbound | Any]
    failing: set[int]
    started: int

    async def _transaction(self, part: PartitionBatch) -> list[Applied]:
        await asyncio.sleep(0)
        if self.started in self.failing:
            raise OSError("broker gone")
        self.published += part.outputs
        return [applied(self.tenants_changelog, w, i) for i, w in enumerate(part.writes)]

    async def commit(self, parts: Sequence[PartitionBatch]) -> list[Applied]:
        self.started += 1
        return await super().commit(parts)


def pipeline(store: Table, failing: set[int]) -> FakeTransactions:
    async def start_offsets() -> dict[int, int]:
        return {}

    async def seek(partition: int, offset: int) -> None:
        return None

    delivery = FakeTransactions(
        core=StreamCore(DEFAULT_POLICY, KAFKA, store, cached_tenants=2),
        producers=cast(PartitionProducers, Producers()),
        events_topic=TOPIC,
        group_id="g",
        tenants=store,
        tenants_changelog="tenants",
        positions=Table(),
        positions_changelog="positions",
        seek=seek,
        start_offsets=start_offsets,
    )
    delivery.published, delivery.failing, delivery.started = [], failing, 0
    return delivery


def by_tenant(pairs: Iterable[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    """Records per tenant in order (dead letters without a tenant, from every partition,
    sorted)."""
    found: dict[bytes, list[bytes]] = {}
    for key, value in pairs:
        found.setdefault(key, []).append(value)
    found[b""] = sorted(found.get(b"", []))
    return found


def delivered(sequential: bool) -> FakeTransactions:
    """All messages in batches of 257; ``sequential``: each batch settled before the next."""
    all_messages = messages()
    delivery = pipeline(Table(), failing=set())

    async def scenario() -> None:
        await delivery.rebalanced({0, 1, 2})
        for start in range(0, len(all_messages), 257):
            batch = all_messages[start : start + 257]
            assert await delivery.run(batch, delivery.generation) == len(batch)
            if sequential:
                await delivery.settle()
        await delivery.settle()

    asyncio.run(scenario())
    return delivery


def test_pipelined_batches_publish_the_plain_ledgers_records_and_state() -> None:
    pipelined, sequential = delivered(sequential=False), delivered(sequential=True)
    expected = plain_ledger_outputs()
    assert by_tenant((o.key, o.value) for o in pipelined.published) == by_tenant(
        (r.tenant_id.encode(), r.to_json()) for r in expected
    )
    assert pipelined.tenants == sequential.tenants
    assert pipelined.core.unapplied.changed == {}


def test_a_failed_batch_drops_the_next_one_processed_on_top_of_it() -> None:
    all_messages = messages()
    store = Table()
    delivery = pipeline(store, failing={2})

    async def scenario() -> list[int]:
        await delivery.rebalanced({0, 1, 2})
        counts = [await delivery.run(all_messages[i : i + 300], 1) for i in (0, 300, 600)]
        return counts

    counts = asyncio.run(scenario())
    assert counts == [300, 300, 0]  # the third was processed on the second's state
    first: dict[str, bytes] = {}
    core = StreamCore(DEFAULT_POLICY, KAFKA, first)
    core.process(all_messages[:300])
    apply_writes(first, core.commit())
    assert dict(store) == first
    assert delivery.stale and delivery.core.unapplied.changed == {}
    assert delivery.core.cached == {}
