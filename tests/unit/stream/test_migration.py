"""A worker of this version continues from state written by the previous one (format 2).

``fixtures/legacy_store_v2.json`` is the table store main's worker core (commit 5d8118b) left
after the first 1,500 messages of ``test_core.messages()`` (batches of 500): one entry per tenant
under the bare tenant id, every call id and id digest inside. Produced by running main's
``StreamCore`` over those messages with ``begin()/process()/commit()`` on a dict and
base64-encoding the values.
"""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

import orjson
from test_core import KAFKA, messages
from test_state_writes import items

from fairuse.events import ApiCall, parse_event
from fairuse.ledger import Ledger
from fairuse.policy import DEFAULT_POLICY
from fairuse.stream.core import StreamCore, apply_writes, entry_key

DAY = 86_400_000
FIXTURE = Path(__file__).parent / "fixtures" / "legacy_store_v2.json"


def legacy_store() -> tuple[int, dict[str, bytes]]:
    found = orjson.loads(FIXTURE.read_bytes())
    return found["messages"], {k: base64.b64decode(v) for k, v in found["store"].items()}


def test_a_new_worker_continues_from_the_old_changelog_with_the_same_records() -> None:
    done, store = legacy_store()
    tenants = set(store)
    ledger = Ledger(DEFAULT_POLICY)
    for message in messages()[:done]:
        ledger.process(message.value, message.source)
    expected = [r.to_json() for m in messages()[done:] for r in ledger.process(m.value, m.source)]

    core = StreamCore(DEFAULT_POLICY, KAFKA, store)
    published = []
    rest = messages()[done:]
    for start in range(0, len(rest), 400):
        published += [o.value for o in core.process(rest[start : start + 400]).outputs]
        writes = core.commit()
        if start == 0:  # the old entries are replaced by new entries and keys, then deleted
            assert {w.key for w in writes if w.value is None} >= tenants
        apply_writes(store, writes)
    assert published == expected
    assert not tenants & set(store)
    for tenant, state in ledger.states.items():
        calls = sum(key.startswith(f"{tenant}/c/") for key in store)
        assert calls == len(state.calls) == core.entry(tenant).state.calls.count
    for state in ledger.states.values():
        state.to_bytes()  # seals: every id listed in an index key
    assert items(store) == items(ledger.keys.data)  # type: ignore[attr-defined]


def test_ids_seen_by_the_old_version_stay_duplicates_until_the_horizon() -> None:
    done, store = legacy_store()
    old = next(m for m in reversed(messages()[:done]) if isinstance(parse_event(m.value), ApiCall))
    again = dataclasses.replace(old, offset=old.offset + 1_000_000)  # a recorder's retry
    core = StreamCore(DEFAULT_POLICY, KAFKA, store)
    batch = core.process([again])
    assert batch.outputs == [] and core.ledger.duplicates == 1
    tenant = orjson.loads(old.value)["tenant_id"]
    assert core.entry(tenant).state.seen.legacy  # kept read-only, pruned with its hours
    apply_writes(store, core.commit())
    assert entry_key(tenant) in store
    event = parse_event(old.value)
    later = orjson.dumps(
        {"type": "api_call", "event_id": "later", "tenant_id": tenant, "ts": event.ts + 9 * DAY}
    )
    core.process([dataclasses.replace(again, value=later, offset=again.offset + 1)])
    assert core.entry(tenant).state.seen.legacy == {}  # past the horizon: exact ids only
