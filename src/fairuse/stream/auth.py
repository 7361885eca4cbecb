"""Bearer-token access to the worker's HTTP API: an admin token and tenant-scoped tokens."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Literal

from fairuse.errors import ConfigError

Access = Literal["ok", "unauthenticated", "forbidden"]


@dataclass(frozen=True, slots=True)
class ApiTokens:
    """``admin`` sees every tenant; ``tenants`` maps a token to the one tenant it may see."""

    admin: str | None = field(default=None, repr=False)
    tenants: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, admin: str | None, tenant_tokens: str | None) -> ApiTokens:
        """From ``FAIRUSE_API_TOKEN`` and ``FAIRUSE_API_TENANT_TOKENS`` (``tenant:token,...``)."""
        tenants: dict[str, str] = {}
        for item in (tenant_tokens or "").split(","):
            item = item.strip()
            if not item:
                continue
            tenant, sep, token = item.partition(":")
            if not sep or not tenant.strip() or not token.strip():
                raise ConfigError(
                    "FAIRUSE_API_TENANT_TOKENS must be 'tenant:token' pairs separated by commas"
                )
            tenants[token.strip()] = tenant.strip()
        return cls(admin=admin or None, tenants=tenants)

    @property
    def configured(self) -> bool:
        """Whether any token is set (without one the API answers 401 to everything)."""
        return bool(self.admin or self.tenants)

    def check(self, authorization: str | None, tenant_id: str) -> Access:
        """Decide access of an ``Authorization`` header value to ``tenant_id``'s data."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return "unauthenticated"
        if self.admin and hmac.compare_digest(token.encode(), self.admin.encode()):
            return "ok"
        for known, tenant in self.tenants.items():
            if hmac.compare_digest(token.encode(), known.encode()):
                return "ok" if tenant == tenant_id else "forbidden"
        return "unauthenticated"
