"""Worker state figures: changelog bytes per event as tenants age, entry sizes, heavy tenants.

Usage: ``.venv/bin/python bench/state.py [--tenants 12] [--days 30] [--seed 1] [--batch 2000]
[--calls 1000000,5000000] [--changelog-only]``; the changelog part also runs against the previous
version: ``PYTHONPATH=<main checkout>/src .venv/bin/python bench/state.py --changelog-only``.

Runs :class:`fairuse.stream.core.StreamCore` over a dict store (``apply_writes`` after every
commit), batch by batch, on the simulated month of ``bench/replay.py``, and prints:

- changelog bytes (keys + values of the ``StateWrite`` records) and records per processed event
  on days 1 (fresh tenants), 7, 8 (expiry starts deleting), 15 and the last (a month of history);
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

from fairuse.policy import DEFAULT_POLICY
from fairuse.settings import KafkaSettings
from fairuse.stream.core import Inbound, StreamCore

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
    """Per event-time day: [events, changelog records, changelog bytes]; and the final store.

    Also runs against the previous version's core (``PYTHONPATH=<main>/src``, whose
    ``commit()`` wrote whole entries to the store and returned the tenants written).
    """
    store: dict[str, bytes] = {}
    core = StreamCore(DEFAULT_POLICY, KAFKA, store)
    keyed = hasattr(core, "discard")
    days: dict[int, list[int]] = {}
    for start in range(0, len(messages), batch):
        chunk = messages[start : start + batch]
        if keyed:
            from fairuse.stream.core import apply_writes  # this version only

            core.process(chunk)
            writes = core.commit()
            apply_writes(store, writes)
            records = len(writes)
            size = sum(len(w.key) + len(w.value or b"") for w in writes)
        else:
            core.begin()
            core.process(chunk)
            written = core.commit()
            records = len(written)
            size = sum(len(t) + len(store[t]) for t in written)
        row = days.setdefault(core.watermark_ms // DAY_MS, [0, 0, 0])
        row[0] += len(chunk)
        row[1] += records
        row[2] += size
    return days, store


def heavy_tenant_rate(payloads: list[bytes], calls: int, repeat: int = 3) -> float:
    """Events/s of CPU for one tenant's events when it already holds ``calls`` stored calls."""
    from fairuse.ledger.keyed import PRESENT, DictKeys, tenant_key  # this version only
    from fairuse.ledger.state import TenantState
    from fairuse.stream.core import TenantEntry, entry_key

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
    parser.add_argument(
        "--changelog-only", action="store_true", help="skip the heavy-tenant figures"
    )
    args = parser.parse_args()

    payloads = simulated_month(args.tenants, args.days, args.seed, 0.001)
    print(f"simulated {len(payloads):,} events, {args.tenants} tenants x {args.days} days")
    days, store = changelog_by_day(inbound(payloads), args.batch)
    ordered = sorted(days)
    for n, day in enumerate(ordered, 1):
        if n in (1, 7, 8, 15) or n == len(ordered):
            events, records, size = days[day]
            print(
                f"day {n:2d}: changelog {size / events:8.1f} bytes/event, "
                f"{records / events:5.2f} records/event ({events:,} events)"
            )
    entries = [len(v) for k, v in store.items() if "/" not in k or k.endswith("/e")]
    keyed = sum(len(k) + len(v) for k, v in store.items() if "/" in k and not k.endswith("/e"))
    print(
        f"tenant entry after the month: mean {sum(entries) // len(entries):,} bytes, "
        f"max {max(entries):,} bytes; keyed state {keyed / len(entries):,.0f} bytes/tenant"
    )
    if args.changelog_only:
        return 0
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
