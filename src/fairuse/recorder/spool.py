"""The recorder's durable spool: append-only segment files of ``(key, payload)`` records.

Format (all integers big-endian), documented in docs/recorder.md:

    segment file  = MAGIC record*            MAGIC = b"FUSPOOL1"
    record        = length:u32 crc:u32 body  crc = zlib.crc32(body), length = len(body)
    body          = spooled_at_ms:u64 key_length:u16 key payload

Segments are named ``<sequence:020d>.seg`` and delivered in sequence order; a record is never
rewritten. On open, every segment is scanned: the intact records are kept, and a damaged or
truncated tail (a power cut mid-write) is moved to ``<segment>.damaged``, logged and counted in
``fairuse_spool_damaged_bytes_total``: nothing is dropped silently. This module is the storage
only (synchronous file I/O); :mod:`fairuse.recorder.forwarder` delivers it to Kafka.
"""

from __future__ import annotations

import logging
import os
import struct
import time
import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from prometheus_client import Counter, Gauge

from fairuse.errors import FairUseError

__all__ = [
    "MAGIC",
    "Batch",
    "Spool",
    "SpoolDamage",
    "SpoolFullError",
    "SpoolOptions",
    "SpoolRecord",
    "decode_records",
    "encode_record",
]

log = logging.getLogger(__name__)

MAGIC = b"FUSPOOL1"
_HEAD = struct.Struct(">II")  # length, crc32 of the body
_BODY = struct.Struct(">QH")  # spooled_at_ms, key length
MAX_KEY_BYTES = 0xFFFF
MAX_BODY_BYTES = 16 * 1024 * 1024  # a length above this is damage, not a record

FsyncPolicy = Literal["always", "interval", "never"]
WhenFull = Literal["block", "raise"]

SPOOL_BYTES = Gauge(
    "fairuse_spool_bytes", "Bytes of records spooled and not yet acknowledged by Kafka", ["spool"]
)
SPOOL_OLDEST_AGE = Gauge(
    "fairuse_spool_oldest_age_seconds",
    "Wall-clock age of the oldest spooled, unacknowledged record (0 when empty)",
    ["spool"],
)
SPOOL_DELIVERED = Counter(
    "fairuse_spool_delivered_events", "Spooled records acknowledged by Kafka", ["spool"]
)
SPOOL_FAILED = Counter(
    "fairuse_spool_failed_events",
    "Spooled records whose delivery attempt failed (they stay spooled and are retried)",
    ["spool"],
)
SPOOL_DAMAGED = Counter(
    "fairuse_spool_damaged_bytes",
    "Bytes of damaged or truncated segment tails found on open (moved to *.damaged)",
    ["spool"],
)


class SpoolFullError(FairUseError):
    """The spool holds ``max_bytes`` of undelivered records and ``when_full="raise"``."""


@dataclass(frozen=True, slots=True)
class SpoolOptions:
    """How the spool stores and bounds records (see docs/recorder.md, "Durable spool").

    ``fsync``: ``"always"`` fsyncs before ``send`` returns (survives a power cut, slow);
    ``"interval"`` (default) writes before ``send`` returns (survives a process crash) and fsyncs
    every ``fsync_interval_ms`` and when a segment is sealed; ``"never"`` leaves it to the OS.
    """

    max_bytes: int = 1024**3
    segment_bytes: int = 16 * 1024**2
    fsync: FsyncPolicy = "interval"
    fsync_interval_ms: int = 200
    when_full: WhenFull = "block"
    batch_records: int = 20_000
    batch_bytes: int = 4 * 1024**2
    retry_backoff_max_s: float = 5.0
    delivery_timeout_s: float = 30.0  # a batch not acknowledged by then is abandoned and retried

    def __post_init__(self) -> None:
        if self.segment_bytes > self.max_bytes:
            raise ValueError("segment_bytes must not exceed max_bytes")
        if self.fsync not in ("always", "interval", "never"):
            raise ValueError(f"unknown fsync policy {self.fsync!r}")
        if self.when_full not in ("block", "raise"):
            raise ValueError(f"unknown when_full {self.when_full!r}")


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One spooled record: the Kafka key and value, and when it was spooled (epoch ms)."""

    key: bytes
    payload: bytes
    spooled_at_ms: int


@dataclass(frozen=True, slots=True)
class SpoolDamage:
    """A damaged segment tail found on open: ``lost_bytes`` from ``offset`` moved aside."""

    segment: Path
    offset: int
    lost_bytes: int
    reason: str
    moved_to: Path


def encode_record(key: bytes, payload: bytes, spooled_at_ms: int) -> bytes:
    """One record's bytes in the segment format."""
    if len(key) > MAX_KEY_BYTES:
        raise ValueError(f"key of {len(key)} bytes is over {MAX_KEY_BYTES}")
    body = _BODY.pack(spooled_at_ms, len(key)) + key + payload
    if len(body) > MAX_BODY_BYTES:
        raise ValueError(f"record of {len(body)} bytes is over {MAX_BODY_BYTES}")
    return _HEAD.pack(len(body), zlib.crc32(body)) + body


def decode_records(
    data: bytes, offset: int = 0, limit: int | None = None
) -> tuple[list[SpoolRecord], int, str | None]:
    """Decode records from ``data[offset:]`` (at most ``limit`` of them).

    Returns the records, the offset just after the last intact one, and why decoding stopped
    before the end of ``data`` (``None`` if it reached the end, or ``limit`` records).
    """
    records: list[SpoolRecord] = []
    end = len(data)
    view = memoryview(data)
    pos = offset
    while pos < end and (limit is None or len(records) < limit):
        if end - pos < _HEAD.size:
            return records, pos, f"truncated record header ({end - pos} bytes)"
        length, crc = _HEAD.unpack_from(data, pos)
        if length < _BODY.size or length > MAX_BODY_BYTES:
            return records, pos, f"impossible record length {length}"
        start = pos + _HEAD.size
        if end - start < length:
            return records, pos, f"truncated record ({end - start} of {length} bytes)"
        body = view[start : start + length]
        if zlib.crc32(body) != crc:
            return records, pos, "checksum mismatch"
        spooled_at, key_length = _BODY.unpack_from(body)
        key_end = _BODY.size + key_length
        if key_end > length:
            return records, pos, f"key length {key_length} beyond the record"
        key, payload = bytes(body[_BODY.size : key_end]), bytes(body[key_end:])
        records.append(SpoolRecord(key, payload, spooled_at))
        pos = start + length
    return records, pos, None


@dataclass(slots=True)
class _Segment:
    sequence: int
    path: Path
    size: int  # bytes written (header included)
    acked: int = len(MAGIC)  # offset up to which records are acknowledged
    sealed: bool = False
    fd: int | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """Records read from one segment, ``[start, end)``; acknowledge it once Kafka has them."""

    records: list[SpoolRecord]
    segment: int
    start: int
    end: int


@dataclass(slots=True)
class Spool:
    """Append-only segment files in ``directory``; open it with :meth:`open`."""

    directory: Path
    options: SpoolOptions = field(default_factory=SpoolOptions)
    damage: list[SpoolDamage] = field(default_factory=list)
    pending_bytes: int = 0  # appended, not yet acknowledged (what max_bytes bounds)
    _segments: deque[_Segment] = field(default_factory=deque)
    _dirty: bool = False
    _label: str = ""
    _last_sequence: int = 0

    @classmethod
    def open(cls, directory: Path, options: SpoolOptions | None = None) -> Spool:
        """Open (creating) the spool, keeping the intact records of every existing segment."""
        directory.mkdir(parents=True, exist_ok=True)
        spool = cls(directory, options or SpoolOptions(), _label=str(directory))
        for path in sorted(directory.glob("*.seg")):
            spool._recover(path)
        spool._last_sequence = max(
            (int(p.name.split(".")[0]) for p in directory.glob("*.seg*")), default=0
        )
        SPOOL_BYTES.labels(spool._label).set_function(lambda: spool.pending_bytes)
        SPOOL_OLDEST_AGE.labels(spool._label).set_function(spool.oldest_age_s)
        return spool

    def _recover(self, path: Path) -> None:
        data = path.read_bytes()
        if data.startswith(MAGIC):
            _records, intact, problem = decode_records(data, len(MAGIC))
        else:
            intact, problem = 0, "missing segment header"
        if problem is not None:
            moved = path.with_name(path.name + ".damaged")
            moved.write_bytes(data[intact:])
            if intact:
                with path.open("r+b") as f:
                    f.truncate(intact)
                    os.fsync(f.fileno())
            else:
                path.unlink()
            damage = SpoolDamage(path, intact, len(data) - intact, problem, moved)
            self.damage.append(damage)
            SPOOL_DAMAGED.labels(self._label).inc(damage.lost_bytes)
            log.error(
                "spool segment %s damaged at offset %d (%s): %d bytes moved to %s; "
                "the %d bytes before it are kept and will be delivered",
                path, intact, problem, damage.lost_bytes, moved, intact,
            )  # fmt: skip
            if not intact:
                return
        if intact <= len(MAGIC):
            path.unlink()
            return
        self._segments.append(_Segment(int(path.stem), path, intact, sealed=True))
        self.pending_bytes += intact - len(MAGIC)

    def fits(self, size: int) -> bool:
        """Whether ``size`` more bytes stay within ``max_bytes`` (an empty spool takes anything)."""
        return self.pending_bytes == 0 or self.pending_bytes + size <= self.options.max_bytes

    def append(self, records: Iterable[tuple[bytes, bytes]]) -> int:
        """Write ``records`` to the active segment in one write; return the bytes written."""
        now = int(time.time() * 1000)
        data = b"".join(encode_record(key, payload, now) for key, payload in records)
        if not data:
            return 0
        segment = self._active()
        written = 0
        while written < len(data):
            written += os.write(segment.fd, data[written:])  # type: ignore[arg-type]
        segment.size += len(data)
        self.pending_bytes += len(data)
        self._dirty = True
        if self.options.fsync == "always":
            self.sync()
        if segment.size >= self.options.segment_bytes:
            self._seal(segment)
        return len(data)

    def _active(self) -> _Segment:
        if self._segments and not self._segments[-1].sealed:
            return self._segments[-1]
        self._last_sequence += 1
        sequence = self._last_sequence
        path = self.directory / f"{sequence:020d}.seg"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        os.write(fd, MAGIC)
        segment = _Segment(sequence, path, len(MAGIC), fd=fd)
        self._segments.append(segment)
        if self.options.fsync != "never":
            _sync_directory(self.directory)
        return segment

    def _seal(self, segment: _Segment) -> None:
        if segment.fd is not None:
            if self.options.fsync != "never":
                os.fsync(segment.fd)
            os.close(segment.fd)
            segment.fd = None
        segment.sealed = True

    def sync(self) -> None:
        """fsync the active segment if anything was written since the last sync."""
        if self._dirty and self._segments and self._segments[-1].fd is not None:
            os.fsync(self._segments[-1].fd)
        self._dirty = False

    def read_batch(self) -> Batch | None:
        """The next unacknowledged records (of one segment), or None if all are acknowledged."""
        while self._segments:
            segment = self._segments[0]
            if segment.acked < segment.size:
                break
            if not segment.sealed:
                return None
            self._drop(segment)
        else:
            return None
        limit = min(segment.size, segment.acked + self.options.batch_bytes)
        with segment.path.open("rb") as f:
            f.seek(segment.acked)
            data = f.read(limit - segment.acked)
            if len(data) >= _HEAD.size:
                length = _HEAD.unpack_from(data)[0]
                if _HEAD.size + length > len(data):  # a record larger than batch_bytes
                    data += f.read(_HEAD.size + length - len(data))
        records, end, _partial = decode_records(data, limit=self.options.batch_records)
        if not records:
            raise OSError(f"spool segment {segment.path} unreadable at offset {segment.acked}")
        return Batch(records, segment.sequence, segment.acked, segment.acked + end)

    def acknowledge(self, batch: Batch) -> None:
        """Mark ``batch`` delivered; a sealed segment delivered to its end is deleted."""
        segment = self._segments[0]
        if segment.sequence != batch.segment or segment.acked != batch.start:
            raise ValueError("batches must be acknowledged in the order they were read")
        segment.acked = batch.end
        self.pending_bytes -= batch.end - batch.start
        if segment.sealed and segment.acked >= segment.size:
            self._drop(segment)

    def _drop(self, segment: _Segment) -> None:
        self._segments.popleft()
        segment.path.unlink(missing_ok=True)

    def oldest_age_s(self) -> float:
        """Age in seconds of the oldest unacknowledged record (0.0 when there is none)."""
        for segment in self._segments:
            if segment.acked < segment.size:
                with segment.path.open("rb") as f:
                    f.seek(segment.acked + _HEAD.size)
                    head = f.read(_BODY.size)
                if len(head) < _BODY.size:
                    return 0.0
                return max(0.0, time.time() - _BODY.unpack(head)[0] / 1000)
        return 0.0

    def close(self) -> None:
        """Seal the active segment (fsync unless ``never``); an empty, delivered one is deleted."""
        for segment in list(self._segments):
            if not segment.sealed:
                self._seal(segment)
        while self._segments and self._segments[0].acked >= self._segments[0].size:
            self._drop(self._segments[0])


def _sync_directory(directory: Path) -> None:
    """fsync a directory so a newly created segment's name survives a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
