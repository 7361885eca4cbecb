"""Worker state figures: changelog bytes per event as tenants age, entry sizes, heavy tenants.

Usage: ``.venv/bin/python bench/state.py [--tenants 12] [--days 30] [--seed 1] [--batch 2000]
[--calls 1000000,5000000]``

Runs :class:`fairuse.stream.core.StreamCore` over a dict store (``apply_writes`` after every
commit), batch by batch, on the simulated month of ``bench/replay.py``, and prints:

- changelog bytes (keys + values of the ``StateWrite`` records) per processed event on the first
  simulated day (fresh tenants) and on the last (tenants holding a month of history);
- the tenant entries' size at the end of the month (mean, max) and the keyed bytes per tenant;
- core throughput (events/s of CPU) of one tenant's month of events when that tenant already
  holds ``--calls`` stored calls, against the same events for a new tenant.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import orjson
from replay import DAY_MS, simulated_month

from fairuse.ledger.keyed import PRESENT, DictKeys, tenant_key
from fairuse.ledger.state import TenantState
from fairuse.policy import DEFAULT_POLICY
from fairuse.settings import KafkaSettings
from fairuse.stream.core import Inbound, StreamCore, TenantEntry, apply_writes, entry_key

KAFKA = KafkaSettings()


def field_of(payload: bytes, name: str) -> object:
    """A top-level field of a payload, or None (faults included)."""
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return obj.get(name) if isinstance(obj, dict) else None


def inbound(payloads: Sequence[bytes]) -> list[Inbound]:
    return [Inbound(p, "fairuse.events", 0, i) for i, p in enumerate(payloads)]


def changelog_by_day(messages: list[Inbound], batch: int) -> tuple[dict[int, list[int]], dict]:
    """Per event-time day: [events, changelog bytes]; and the final store."""
    store: dict[str, bytes] = {}
    core = StreamCore(DEFAULT_POLICY, KAFKA, store)
    days: dict[int, list[int]] = {}
    for start in range(0, len(messages), batch):
        chunk = messages[start : start + batch]
        core.process(chunk)
        writes = core.commit()
        apply_writes(store, writes)
        size = sum(len(w.key) + len(w.value or b"") for w in writes)
        day = core.watermark_ms // DAY_MS
        row = days.setdefault(day, [0, 0])
        row[0] += len(chunk)
        row[1] += size
    return days, store


def heavy_tenant_rate(payloads: list[bytes], calls: int, repeat: int = 3) -> float:
    """Events/s of CPU for one tenant's events when it already holds ``calls`` stored calls."""
    tenant = field_of(payloads[0], "tenant_id")
    own = [p for p in payloads if field_of(p, "tenant_id") == tenant]
    store: dict[str, bytes] = {}
    if calls:
        prefix = tenant_key(tenant, "c")
        store.update((f"{prefix}history-call-{i:09d}", PRESENT) for i in range(calls))
        state = TenantState.new(tenant, DictKeys(store))
        state.calls.count = calls
        store[entry_key(tenant)] = TenantEntry(state, 0, -1).to_bytes()
    messages = inbound(own)
    best = float("inf")
    for _ in range(repeat):
        core = StreamCore(DEFAULT_POLICY, KAFKA, store)
        started = time.process_time()
        for start in range(0, len(messages), 2000):
            core.process(messages[start : start + 2000])
            core.commit()  # not applied: every run starts from the same store
        best = min(best, time.process_time() - started)
    return len(messages) / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=12)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--calls", default="1000000,5000000")
    args = parser.parse_args()

    payloads = simulated_month(args.tenants, args.days, args.seed, 0.001)
    print(f"simulated {len(payloads):,} events, {args.tenants} tenants x {args.days} days")
    days, store = changelog_by_day(inbound(payloads), args.batch)
    ordered = sorted(days)
    for label, day in (("first day (fresh tenants)", ordered[0]), ("last day", ordered[-1])):
        events, size = days[day]
        print(f"changelog bytes/event, {label:26s} {size / events:8.1f}  ({events:,} events)")
    entries = [len(v) for k, v in store.items() if k.endswith("/e")]
    keyed = sum(len(k) + len(v) for k, v in store.items() if not k.endswith("/e"))
    print(
        f"tenant entry after the month: mean {sum(entries) // len(entries):,} bytes, "
        f"max {max(entries):,} bytes; keyed state {keyed / len(entries):,.0f} bytes/tenant "
        f"({sum(not k.endswith('/e') for k in store) / len(entries):,.0f} keys/tenant)"
    )
    base = heavy_tenant_rate(payloads, 0)
    print(f"one tenant's month, new tenant:          {base:10,.0f} events/s of CPU")
    for calls in (int(c) for c in args.calls.split(",") if c):
        rate = heavy_tenant_rate(payloads, calls)
        print(
            f"one tenant's month, {calls:>9,} stored calls: {rate:10,.0f} events/s of CPU "
            f"({100 * rate / base:.0f} % of a new tenant)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
