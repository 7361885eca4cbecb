"""Signed, expiring portal links: an HMAC-SHA256 token naming the tenant and the expiry.

A token is ``<payload>.<signature>``, both base64url without padding; the payload is
``<tenant>|<expires epoch s>``, where tenant ``*`` is an admin link (every tenant). Pure: the
caller passes the secret and the clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from fairuse.errors import ConfigError

ADMIN = "*"
_TTL_RE = re.compile(r"(\d+)\s*([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL_S = 31 * 86400


@dataclass(frozen=True, slots=True)
class Grant:
    """What a valid token allows: one tenant, or every tenant (``admin``), until ``expires``."""

    tenant: str
    expires: int

    @property
    def admin(self) -> bool:
        """Whether the token may read every tenant."""
        return self.tenant == ADMIN

    def may_read(self, tenant: str) -> bool:
        """Whether the holder may see ``tenant``'s pages."""
        return self.admin or hmac.compare_digest(self.tenant.encode(), tenant.encode())


def parse_ttl(text: str) -> int:
    """Seconds of a duration such as ``12h``, ``30m``, ``7d``, ``90s`` (1 s to 31 days)."""
    match = _TTL_RE.fullmatch(text.strip())
    if not match:
        raise ConfigError(f"--ttl must look like 12h, 30m, 7d or 90s, got {text!r}")
    seconds = int(match[1]) * _UNIT_S[match[2]]
    if not 1 <= seconds <= MAX_TTL_S:
        raise ConfigError(f"--ttl must be between 1 s and 31 days, got {text!r}")
    return seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


def sign(secret: str, tenant: str, expires: int) -> str:
    """A token for ``tenant`` (``*`` = admin) valid until epoch second ``expires``."""
    if not secret:
        raise ConfigError("FAIRUSE_PORTAL_SECRET must be set to sign portal links")
    if "|" in tenant or not tenant:
        raise ConfigError(f"not a tenant id: {tenant!r}")
    payload = _b64(f"{tenant}|{expires}".encode())
    return f"{payload}.{_signature(secret, payload)}"


def verify(secret: str, token: str, now: float) -> Grant | None:
    """The grant of ``token`` if its signature is good and it has not expired at ``now``."""
    payload, dot, signature = token.partition(".")
    if not secret or not dot or not hmac.compare_digest(signature, _signature(secret, payload)):
        return None
    try:
        tenant, _, expires = _unb64(payload).decode().rpartition("|")
        grant = Grant(tenant, int(expires))
    except (ValueError, UnicodeDecodeError):
        return None
    return grant if grant.tenant and now < grant.expires else None
