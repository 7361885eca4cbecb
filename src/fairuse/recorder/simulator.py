"""A deterministic recorder-fleet simulator: a pure iterator of wire payloads, no I/O.

Each tenant has a time zone, a roster of named users and a daily rhythm (working days busier,
sessions in office hours). Users record audio (mono/stereo) and video (720p to 4K) sessions with a
start, heartbeats and a stop; each finished session stores a call, some calls are deleted later;
API gateways report calls (some in batches); rosters change; a tenant now and then announces a
high-traffic period (``usage_notice``). A share of tenants breaks the Fair Usage Policy on purpose
(:data:`BREAKER_KINDS`). Optional faults (duplicate deliveries, a stop dated before its start,
garbage payloads) exercise the dead-letter paths downstream.

Everything derives from ``FleetConfig.seed``: the same configuration yields the same payloads,
byte for byte. A tenant's emissions come in event-time order (faults aside: a fault is delivered
at the current time but may carry an older ``ts``); tenants are merged by delivery time.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import count
from typing import Literal
from zoneinfo import ZoneInfo

from fairuse.events import (
    ApiCall,
    CallDeleted,
    CallStored,
    Event,
    SessionHeartbeat,
    SessionStarted,
    SessionStopped,
    UsageNotice,
    UserActivated,
    UserDeactivated,
    encode_event,
)

BreakerKind = Literal["audio", "video", "api", "storage"]
BREAKER_KINDS: tuple[BreakerKind, ...] = ("audio", "video", "api", "storage")
FaultKind = Literal["duplicate", "stop_before_start", "garbage"]
FAULT_KINDS: tuple[FaultKind, ...] = ("duplicate", "stop_before_start", "garbage")

TIME_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Australia/Sydney",
)
VIDEO_SIZES = ((1280, 720), (1920, 1080), (2560, 1440), (3840, 2160))
# fmt: off
FIRST_NAMES = (
    "ada", "alan", "barbara", "claude", "edsger", "frances", "grace", "ivan", "john", "ken",
    "leslie", "margaret", "niklaus", "radia", "shafi", "tim", "tony", "vint", "whitfield",
    "yukihiro",
)
LAST_NAMES = (
    "adams", "baker", "chen", "diaz", "evans", "fischer", "garcia", "hughes", "ito", "jones",
    "kim", "lopez", "moreau", "nowak", "okafor", "patel", "quinn", "rossi", "silva", "tanaka",
)
# fmt: on
GARBAGE = (
    b"not json at all",
    b'{"type": "session_heartbeat", "tenant_id": ',
    b"[1, 2, 3]",
    b'{"type": "teleport", "event_id": "x", "tenant_id": "t", "ts": 1}',
)

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
DAY_MS = 24 * HOUR_MS

# Per-seat daily recording targets in hours (working day, weekend) and the share of video.
_NORMAL_HOURS = ((1.0, 6.0), (0.0, 1.0))
_AUDIO_BREAKER_HOURS = ((9.5, 12.0), (4.0, 8.0))
_VIDEO_BREAKER_HOURS = ((6.5, 9.0), (2.0, 4.0))
_API_CALLS_NORMAL = ((300, 1500), (0, 150))
_API_CALLS_BREAKER = (4000, 6000)
_STORAGE_BACKLOG_PER_USER = (10_500, 12_000)


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """What to simulate. ``duration_ms=None`` runs without an event-time bound."""

    seed: int = 1
    tenants: int = 10
    start_ms: int = int(datetime(2026, 11, 2, tzinfo=UTC).timestamp() * 1000)
    duration_ms: int | None = 7 * DAY_MS
    heartbeat_s: int = 60
    breaker_share: float = 0.25
    fault_rate: float = 0.0


@dataclass(frozen=True, slots=True)
class Emission:
    """One payload for the events topic: key ``tenant_id``, delivered at event time ``at``.

    ``event`` is the typed event (``None`` for garbage), ``fault`` names an injected fault.
    """

    at: int
    tenant_id: str
    payload: bytes
    event: Event | None
    fault: FaultKind | None = None


@dataclass(frozen=True, slots=True)
class TenantProfile:
    """A simulated tenant: id, zone, roster at start, and the rule it breaks (if any)."""

    index: int
    tenant_id: str
    time_zone: str
    users: tuple[str, ...]
    breaker: BreakerKind | None


def tenant_profiles(config: FleetConfig) -> list[TenantProfile]:
    """The tenants of ``config``: ``round(breaker_share * tenants)`` of them break a rule each,
    the kinds taken in turn from :data:`BREAKER_KINDS`."""
    rng = random.Random(f"fleet:{config.seed}")
    breakers = round(config.breaker_share * config.tenants)
    breaker_slots = sorted(rng.sample(range(config.tenants), breakers))
    kinds = {slot: BREAKER_KINDS[n % len(BREAKER_KINDS)] for n, slot in enumerate(breaker_slots)}
    profiles = []
    for index in range(config.tenants):
        breaker = kinds.get(index)
        seats = rng.randint(2, 3) if breaker == "storage" else rng.randint(3, 12)
        names = rng.sample([f"{f}.{s}" for f in FIRST_NAMES for s in LAST_NAMES], seats)
        profiles.append(
            TenantProfile(
                index=index,
                tenant_id=f"tenant-{index + 1:03d}",
                time_zone=rng.choice(TIME_ZONES),
                users=tuple(names),
                breaker=breaker,
            )
        )
    return profiles


@dataclass(slots=True)
class _TenantSim:
    """The mutable state of one tenant's generator."""

    profile: TenantProfile
    config: FleetConfig
    rng: random.Random
    zone: ZoneInfo
    active: list[str]
    pending: list[tuple[int, int, Event]] = field(default_factory=list)
    stored_calls: list[tuple[int, str]] = field(default_factory=list)
    seq: count = field(default_factory=count)
    order: count = field(default_factory=count)
    imported: bool = False
    sessions: count = field(default_factory=lambda: count(1))
    calls: count = field(default_factory=lambda: count(1))
    last_start: SessionStarted | None = None

    @property
    def tenant_id(self) -> str:
        return self.profile.tenant_id

    def event_id(self) -> str:
        return f"{self.tenant_id}:e{next(self.seq)}"

    def push(self, event: Event) -> None:
        heapq.heappush(self.pending, (event.ts, next(self.order), event))

    def local_ms(self, day: date, hour: float) -> int:
        """Epoch ms of ``hour`` (fractional) on local ``day`` in the tenant's zone."""
        midnight = datetime(day.year, day.month, day.day, tzinfo=self.zone)
        return int((midnight + timedelta(hours=hour)).timestamp() * 1000)

    # -- one local day -------------------------------------------------------------------------

    def plan_day(self, day: date, not_before: int) -> None:
        """Schedule everything of local ``day`` that starts at or after ``not_before``."""
        working = day.weekday() < 5
        self.plan_roster(day, working, not_before)
        for user in list(self.active):
            self.plan_sessions(user, day, working, not_before)
        self.plan_api_calls(day, working, not_before)
        self.plan_storage(day, working, not_before)
        self.plan_deletions(day, not_before)
        if working and self.rng.random() < 0.05:
            self.plan_notice(day, not_before)

    def plan_roster(self, day: date, working: bool, not_before: int) -> None:
        if not working or self.profile.breaker is not None:  # breakers keep their roster
            return
        at = self.local_ms(day, self.rng.uniform(5.0, 6.0))
        if at < not_before:
            return
        if self.rng.random() < 0.04:
            user = f"{self.rng.choice(FIRST_NAMES)}.{self.rng.choice(LAST_NAMES)}"
            if user not in self.active:
                self.active.append(user)
                self.push(
                    UserActivated(
                        event_id=self.event_id(), tenant_id=self.tenant_id, ts=at, user_id=user
                    )
                )
        elif self.rng.random() < 0.03 and len(self.active) > 2:
            user = self.active.pop(self.rng.randrange(len(self.active)))
            self.push(
                UserDeactivated(
                    event_id=self.event_id(), tenant_id=self.tenant_id, ts=at, user_id=user
                )
            )

    def plan_sessions(self, user: str, day: date, working: bool, not_before: int) -> None:
        breaker = self.profile.breaker
        if breaker == "audio":
            lo, hi = _AUDIO_BREAKER_HOURS[0 if working else 1]
            first, last, video_share = 6.5, 23.0, 0.0
        elif breaker == "video":
            lo, hi = _VIDEO_BREAKER_HOURS[0 if working else 1]
            first, last, video_share = 7.0, 21.0, 1.0
        else:
            if self.rng.random() > (0.85 if working else 0.1):
                return
            lo, hi = _NORMAL_HOURS[0 if working else 1]
            first, last, video_share = 8.0, 18.5, 0.25
        target_ms = int(self.rng.uniform(lo, hi) * HOUR_MS)
        clock = self.local_ms(day, self.rng.uniform(first, first + 1.5))
        end_of_day = self.local_ms(day, last)
        recorded = 0
        while recorded < target_ms and clock < end_of_day:
            long_sessions = breaker in ("audio", "video")
            length = self.rng.randint(60, 240) if long_sessions else self.rng.randint(10, 90)
            length_ms = min(length * MINUTE_MS, target_ms - recorded, end_of_day - clock)
            if length_ms < MINUTE_MS:
                break
            if clock >= not_before:
                self.plan_session(user, clock, length_ms, self.rng.random() < video_share)
                recorded += length_ms
            gap = self.rng.randint(1, 10) if long_sessions else self.rng.randint(5, 60)
            clock += length_ms + gap * MINUTE_MS

    def plan_session(self, user: str, start: int, length_ms: int, video: bool) -> None:
        session_id = f"{self.tenant_id}:s{next(self.sessions)}"
        common = {"tenant_id": self.tenant_id, "session_id": session_id}
        if video:
            width, height = self.rng.choice(VIDEO_SIZES)
            started = SessionStarted(
                event_id=self.event_id(),
                ts=start,
                user_id=user,
                media="video",
                width=width,
                height=height,
                **common,
            )
        else:
            channels = 2 if self.rng.random() < 0.2 else 1
            started = SessionStarted(
                event_id=self.event_id(),
                ts=start,
                user_id=user,
                media="audio",
                channels=channels,
                **common,
            )
        self.push(started)
        step = self.config.heartbeat_s * 1000
        stop = start + length_ms
        for ts in range(start + step, stop, step):
            self.push(SessionHeartbeat(event_id=self.event_id(), ts=ts, **common))
        self.push(SessionStopped(event_id=self.event_id(), ts=stop, **common))
        self.store_call(stop + self.rng.randint(1_000, 30_000))

    def store_call(self, at: int) -> None:
        call_id = f"{self.tenant_id}:c{next(self.calls)}"
        self.stored_calls.append((at, call_id))
        self.push(
            CallStored(event_id=self.event_id(), tenant_id=self.tenant_id, ts=at, call_id=call_id)
        )

    def plan_api_calls(self, day: date, working: bool, not_before: int) -> None:
        if self.profile.breaker == "api":
            total, first, last = self.rng.randint(*_API_CALLS_BREAKER), 0.0, 24.0
        else:
            total = self.rng.randint(*_API_CALLS_NORMAL[0 if working else 1])
            first, last = 8.0, 18.0
        times: list[tuple[int, int]] = []
        while total > 0:
            batch = 1 if self.rng.random() < 0.6 else min(total, self.rng.randint(2, 50))
            times.append((self.local_ms(day, self.rng.uniform(first, last)), batch))
            total -= batch
        for at, batch in sorted(times):
            if at >= not_before:
                self.push(
                    ApiCall(event_id=self.event_id(), tenant_id=self.tenant_id, ts=at, count=batch)
                )

    def plan_storage(self, day: date, working: bool, not_before: int) -> None:
        """A storage breaker imports a backlog of calls on its first working day."""
        if self.profile.breaker != "storage" or not working or self.imported:
            return
        self.imported = True
        per_user = self.rng.randint(*_STORAGE_BACKLOG_PER_USER)
        start = max(self.local_ms(day, 9.0), not_before)
        spread_ms = 8 * HOUR_MS
        imports = per_user * len(self.active)
        for n in range(imports):
            self.store_call(start + n * spread_ms // imports)

    def plan_deletions(self, day: date, not_before: int) -> None:
        deletions = sum(1 for _ in range(3) if self.rng.random() < 0.3)
        for _ in range(min(deletions, len(self.stored_calls) // 4)):
            at = self.local_ms(day, self.rng.uniform(10.0, 16.0))
            if at < not_before:
                continue
            index = self.rng.randrange(len(self.stored_calls))
            stored_at, call_id = self.stored_calls[index]
            if stored_at >= at:
                continue
            self.stored_calls[index] = self.stored_calls[-1]
            self.stored_calls.pop()
            self.push(
                CallDeleted(
                    event_id=self.event_id(), tenant_id=self.tenant_id, ts=at, call_id=call_id
                )
            )

    def plan_notice(self, day: date, not_before: int) -> None:
        at = self.local_ms(day, self.rng.uniform(9.0, 17.0))
        if at < not_before:
            return
        starts = self.local_ms(day + timedelta(days=self.rng.randint(2, 10)), 0.0)
        ends = starts + self.rng.randint(1, 3) * DAY_MS
        metrics = self.rng.choice(
            (
                ("audio_hours", "video_hours"),
                ("api_calls",),
                ("audio_hours", "video_hours", "api_calls", "stored_calls_per_user"),
            )
        )
        self.push(
            UsageNotice(
                event_id=self.event_id(),
                tenant_id=self.tenant_id,
                ts=at,
                notice_id=f"{self.tenant_id}:n{at}",
                starts=starts,
                ends=ends,
                metrics=metrics,
            )
        )


def _emit(event: Event, fault: FaultKind | None = None, at: int | None = None) -> Emission:
    return Emission(
        at=event.ts if at is None else at,
        tenant_id=event.tenant_id,
        payload=encode_event(event),
        event=event,
        fault=fault,
    )


def _tenant_stream(profile: TenantProfile, config: FleetConfig) -> Iterator[Emission]:
    """One tenant's emissions in delivery-time order (unbounded)."""
    sim = _TenantSim(
        profile=profile,
        config=config,
        rng=random.Random(f"tenant:{config.seed}:{profile.index}"),
        zone=ZoneInfo(profile.time_zone),
        active=list(profile.users),
    )
    start = config.start_ms
    for user in profile.users:
        sim.push(
            UserActivated(event_id=sim.event_id(), tenant_id=sim.tenant_id, ts=start, user_id=user)
        )
    day = datetime.fromtimestamp(start / 1000, sim.zone).date()
    while True:
        sim.plan_day(day, not_before=start)
        day += timedelta(days=1)
        horizon = sim.local_ms(day, 0.0)
        while sim.pending and sim.pending[0][0] < horizon:
            event = heapq.heappop(sim.pending)[2]
            if isinstance(event, SessionStarted):
                sim.last_start = event
            yield _emit(event)
            if config.fault_rate and sim.rng.random() < config.fault_rate:
                yield _fault(sim, event)


def _fault(sim: _TenantSim, event: Event) -> Emission:
    """An injected fault right after ``event`` (delivered at ``event.ts``)."""
    kind = sim.rng.choice(FAULT_KINDS)
    if kind == "stop_before_start" and sim.last_start is not None:
        started = sim.last_start
        stop = SessionStopped(
            event_id=sim.event_id(),
            tenant_id=sim.tenant_id,
            ts=started.ts - 5 * MINUTE_MS,
            session_id=started.session_id,
        )
        return _emit(stop, "stop_before_start", at=event.ts)
    if kind != "garbage":
        return _emit(event, "duplicate")
    payload = sim.rng.choice(GARBAGE)
    return Emission(
        at=event.ts, tenant_id=sim.tenant_id, payload=payload, event=None, fault="garbage"
    )


def simulate(config: FleetConfig) -> Iterator[Emission]:
    """All tenants' emissions merged by delivery time (ties: tenant order), within the duration."""
    profiles = tenant_profiles(config)
    streams = [_tenant_stream(p, config) for p in profiles]
    merged = heapq.merge(*streams, key=lambda e: (e.at, e.tenant_id))
    if config.duration_ms is None:
        yield from merged
        return
    end = config.start_ms + config.duration_ms
    for emission in merged:
        if emission.at >= end:
            return
        yield emission
