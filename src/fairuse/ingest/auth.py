"""Ingest tokens scoped to tenants, and a per-token rate limit (token bucket, events/s)."""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fairuse.errors import ConfigError

ANY_TENANT = "*"


@dataclass(frozen=True, slots=True)
class IngestTokens:
    """``token -> tenants it may write`` (``{"*"}`` = every tenant)."""

    scopes: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, text: str | None) -> IngestTokens:
        """From ``FAIRUSE_INGEST_TOKENS``: ``token=tenant-a,tenant-b;token2=*``."""
        scopes: dict[str, frozenset[str]] = {}
        for entry in (text or "").split(";"):
            if not entry.strip():
                continue
            token, sep, tenants = entry.partition("=")
            names = frozenset(t.strip() for t in tenants.split(",") if t.strip())
            if not sep or not token.strip() or not names:
                raise ConfigError(
                    "FAIRUSE_INGEST_TOKENS must be 'token=tenant,tenant' entries separated by "
                    "';' ('token=*' for every tenant)"
                )
            scopes[token.strip()] = names
        return cls(scopes)

    def tenants_of(self, authorization: str | None) -> tuple[str, frozenset[str]] | None:
        """``(token, tenants)`` for an ``Authorization: Bearer`` value; None if not a token."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        for known, tenants in self.scopes.items():
            if hmac.compare_digest(token.encode(), known.encode()):
                return known, tenants
        return None


def may_write(tenants: frozenset[str], tenant_id: str) -> bool:
    """Whether a token scoped to ``tenants`` may write ``tenant_id``'s events."""
    return ANY_TENANT in tenants or tenant_id in tenants


@dataclass(slots=True)
class RateLimiter:
    """A token bucket per ingest token: ``rate`` events/s, holding at most ``burst`` events."""

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, token: str, events: int) -> float:
        """Take ``events``; 0.0 if allowed, else the seconds to wait before they would be."""
        now = self.clock()
        level, at = self._buckets.get(token, (self.burst, now))
        level = min(self.burst, level + (now - at) * self.rate)
        if events <= level:
            self._buckets[token] = (level - events, now)
            return 0.0
        self._buckets[token] = (level, now)
        return max(0.001, (min(events, self.burst) - level) / self.rate)


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` header value (whole seconds, at least 1)."""
    return str(max(1, math.ceil(seconds)))
