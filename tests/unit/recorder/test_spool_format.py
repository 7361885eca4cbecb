"""The spool's segment format and storage: round trips, truncation, damage, the byte bound."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairuse.recorder.client import RecorderClient, SpoolFullError
from fairuse.recorder.spool import MAGIC, Spool, SpoolOptions, decode_records, encode_record
from fairuse.settings import KafkaSettings

records_st = st.lists(
    st.tuples(st.binary(max_size=64), st.binary(max_size=300), st.integers(0, 2**63 - 1)),
    max_size=30,
)


@given(records_st)
def test_any_sequence_of_records_round_trips(records: list[tuple[bytes, bytes, int]]) -> None:
    data = b"".join(encode_record(k, p, t) for k, p, t in records)
    decoded, end, problem = decode_records(data)
    assert [(r.key, r.payload, r.spooled_at_ms) for r in decoded] == records
    assert (end, problem) == (len(data), None)


@given(records_st, st.data())
def test_any_truncation_yields_a_prefix(records: list[tuple[bytes, bytes, int]], data) -> None:
    encoded = [encode_record(k, p, t) for k, p, t in records]
    whole = b"".join(encoded)
    cut = data.draw(st.integers(0, len(whole)))
    decoded, end, problem = decode_records(whole[:cut])
    assert [(r.key, r.payload, r.spooled_at_ms) for r in decoded] == records[: len(decoded)]
    assert end == sum(len(e) for e in encoded[: len(decoded)])
    assert (problem is None) == (end == cut)


@given(records_st.filter(bool), st.data())
def test_a_flipped_byte_is_detected(records: list[tuple[bytes, bytes, int]], data) -> None:
    whole = bytearray(b"".join(encode_record(k, p, t) for k, p, t in records))
    at = data.draw(st.integers(0, len(whole) - 1))
    whole[at] ^= 1 << data.draw(st.integers(0, 7))
    decoded, _end, problem = decode_records(bytes(whole))
    assert problem is not None  # CRC32 catches every single-bit error; length flips fail framing
    assert [(r.key, r.payload, r.spooled_at_ms) for r in decoded] == records[: len(decoded)]


def spooled(spool: Spool) -> list[tuple[bytes, bytes]]:
    """Read and acknowledge everything in ``spool``."""
    found = []
    while (batch := spool.read_batch()) is not None:
        found += [(r.key, r.payload) for r in batch.records]
        spool.acknowledge(batch)
    return found


def test_segments_rotate_are_deleted_once_acknowledged_and_survive_reopen(tmp_path: Path) -> None:
    options = SpoolOptions(max_bytes=10**6, segment_bytes=1000, batch_records=7)
    spool = Spool.open(tmp_path, options)
    records = [(b"t%d" % (i % 3), b"payload-%d" % i) for i in range(200)]
    for i in range(0, 200, 10):
        spool.append(records[i : i + 10])
    spool.close()
    assert len(list(tmp_path.glob("*.seg"))) > 3
    reopened = Spool.open(tmp_path, options)
    assert reopened.pending_bytes > 0 and not reopened.damage
    assert spooled(reopened) == records
    assert reopened.pending_bytes == 0
    reopened.close()
    assert list(tmp_path.glob("*.seg")) == []


def test_a_truncated_tail_keeps_the_intact_records_and_reports_the_damage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool.open(tmp_path)
    records = [(b"acme", b"x" * 50 + b"%d" % i) for i in range(10)]
    spool.append(records)
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    size = segment.stat().st_size
    with segment.open("r+b") as f:
        f.truncate(size - 20)  # the power cut hit the last record
    with caplog.at_level(logging.ERROR):
        reopened = Spool.open(tmp_path)
    (damage,) = reopened.damage
    assert damage.reason.startswith("truncated record")
    assert damage.moved_to.exists() and damage.lost_bytes == damage.moved_to.stat().st_size
    assert "damaged" in caplog.text and str(segment) in caplog.text
    assert spooled(reopened) == records[:9]


def test_a_segment_without_its_header_is_moved_aside(tmp_path: Path) -> None:
    (tmp_path / f"{1:020d}.seg").write_bytes(MAGIC[:3])
    spool = Spool.open(tmp_path)
    assert [d.reason for d in spool.damage] == ["missing segment header"]
    assert spool.read_batch() is None
    spool.append([(b"a", b"b")])  # a new segment does not reuse the damaged one's name
    assert spooled(spool) == [(b"a", b"b")]


UNREACHABLE = KafkaSettings(bootstrap="127.0.0.1:9")  # nothing listens on port 9


def test_a_full_spool_raises_when_so_configured(tmp_path: Path) -> None:
    options = SpoolOptions(max_bytes=4000, segment_bytes=1000, when_full="raise")

    async def run() -> RecorderClient:
        client = RecorderClient(UNREACHABLE, spool_dir=tmp_path, spool=options)
        await client.start()
        with pytest.raises(SpoolFullError, match="is full"):
            for i in range(1000):
                await client.send_raw(b"acme", b"%04d" % i + b"." * 96)
        await client.close(flush=False)
        return client

    client = asyncio.run(run())
    assert 0 < client.sent < 1000
    reopened = Spool.open(tmp_path, options)
    assert len(spooled(reopened)) == client.sent  # every send that returned is in the spool
