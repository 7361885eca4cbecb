"""``encode_event``'s fast path (orjson on the dataclass) is byte-identical to ``to_dict()``."""

from __future__ import annotations

import dataclasses

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairuse.events import METRICS, SessionHeartbeat, UsageNotice, encode_event, parse_event
from fairuse.recorder.simulator import DAY_MS, FleetConfig, simulate
from fairuse.records import UsageAccrual


def test_every_simulated_event_type_encodes_like_its_dict() -> None:
    config = FleetConfig(seed=7, tenants=8, breaker_share=0.5, duration_ms=30 * DAY_MS)
    seen = set()
    for emission in simulate(config):
        event = emission.event
        assert event is not None
        if event.type in seen and event.type != "usage_notice":
            continue
        seen.add(event.type)
        assert encode_event(event) == orjson.dumps(event.to_dict())
    assert len(seen) == 9


@given(
    text=st.text(min_size=1, max_size=40),
    metrics=st.lists(st.sampled_from(METRICS), min_size=1, unique=True),
    ts=st.integers(946_684_800_000, 4_000_000_000_000),
)
def test_usage_notices_with_any_text_and_metrics_round_trip(
    text: str, metrics: list[str], ts: int
) -> None:
    notice = UsageNotice(
        event_id=text,
        tenant_id="t-1",
        ts=ts,
        notice_id=text,
        starts=ts,
        ends=ts + 1,
        metrics=tuple(metrics),  # type: ignore[arg-type]
    )
    payload = encode_event(notice)
    assert payload == orjson.dumps(notice.to_dict())
    assert parse_event(payload) == notice


def test_records_with_a_hand_written_init_stay_frozen_dataclasses() -> None:
    heartbeat = SessionHeartbeat(event_id="e", tenant_id="t", ts=946_684_800_000, session_id="s")
    accrual = UsageAccrual("t", "audio_hours", "2026-11-30", 1.5, 1, "s", "u", "e")
    for record in (heartbeat, accrual):
        names = [f.name for f in dataclasses.fields(record)]
        assert list(vars(record)) == names  # every field, in order: orjson writes this order
        assert orjson.loads(orjson.dumps(record)) == dataclasses.asdict(record)
        assert record == dataclasses.replace(record) and hash(record) == hash(
            dataclasses.replace(record)
        )
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.tenant_id = "other"  # type: ignore[misc]
    assert encode_event(heartbeat) == orjson.dumps(heartbeat.to_dict())
