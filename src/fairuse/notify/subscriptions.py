"""The subscriptions file (``FAIRUSE_NOTIFY_SUBSCRIPTIONS``, TOML): who gets which records, how.

```toml
[[subscription]]
name = "acme-ops"                 # unique; names the subscription in logs and retry state
tenant = "acme"                   # or "*" for every tenant
kinds = ["violation.exceeded", "enforcement"]   # kinds, families or "*"
webhook = { url = "https://hooks.acme.example/fairuse", secret = "whsec_..." }
email = ["ops@acme.example"]      # a webhook, e-mail addresses, or both
```

:func:`parse_subscriptions` is pure; :class:`SubscriptionFile` re-reads the file when its
modification time or size changes and keeps the last good version when a new one is bad.
"""

from __future__ import annotations

import logging
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from fairuse.errors import ConfigError
from fairuse.notify.kinds import FAMILIES, KNOWN_KINDS, kind_matches
from fairuse.notify.signing import secret_key

log = logging.getLogger(__name__)

Channel = Literal["webhook", "email"]
_EMAIL = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+|[^@\s<>]+@localhost")
_KEYS = {"name", "tenant", "kinds", "webhook", "email"}


@dataclass(frozen=True, slots=True)
class Target:
    """One destination of one subscription."""

    subscription: str
    channel: Channel
    address: str  # the webhook URL or the e-mail address


@dataclass(frozen=True, slots=True)
class Subscription:
    """One ``[[subscription]]`` table."""

    name: str
    tenant: str
    kinds: tuple[str, ...]
    webhook_url: str | None
    webhook_key: bytes | None
    emails: tuple[str, ...]

    def targets(self) -> list[Target]:
        """The webhook and each e-mail address as targets."""
        found = [Target(self.name, "webhook", self.webhook_url)] if self.webhook_url else []
        return found + [Target(self.name, "email", address) for address in self.emails]


@dataclass(frozen=True, slots=True)
class Subscriptions:
    """A parsed subscriptions file."""

    items: tuple[Subscription, ...] = ()

    def targets_for(self, tenant_id: str, kind: str) -> list[Target]:
        """Every target subscribed to ``kind`` records of ``tenant_id`` (each once)."""
        found: dict[Target, None] = {}
        for sub in self.items:
            if sub.tenant in ("*", tenant_id) and any(kind_matches(p, kind) for p in sub.kinds):
                found.update(dict.fromkeys(sub.targets()))
        return list(found)

    def webhook_key(self, subscription: str, url: str) -> bytes | None:
        """The signing key of the webhook ``url`` of ``subscription`` if it is still subscribed."""
        for sub in self.items:
            if sub.name == subscription and sub.webhook_url == url:
                return sub.webhook_key
        return None

    def has_target(self, target: Target) -> bool:
        """Whether ``target`` is still part of the subscriptions."""
        return any(target in sub.targets() for sub in self.items if sub.name == target.subscription)


def _subscription(index: int, table: Any) -> Subscription:
    where = f"subscription #{index + 1}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = set(table) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name = table.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: 'name' (a non-empty string) is required")
    where = f"subscription {name!r}"
    tenant = table.get("tenant")
    if not isinstance(tenant, str) or not tenant:
        raise ConfigError(f"{where}: 'tenant' (a tenant id or \"*\") is required")
    kinds = table.get("kinds", ["*"])
    if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) for k in kinds):
        raise ConfigError(f"{where}: 'kinds' must be a non-empty list of strings")
    for kind in kinds:
        if kind != "*" and kind not in KNOWN_KINDS and kind not in FAMILIES:
            known = ", ".join(("*", *FAMILIES, *KNOWN_KINDS))
            raise ConfigError(f"{where}: unknown kind {kind!r}; known: {known}")
    url, key = None, None
    webhook = table.get("webhook")
    if webhook is not None:
        if not isinstance(webhook, dict) or set(webhook) != {"url", "secret"}:
            raise ConfigError(f'{where}: \'webhook\' must be {{ url = "...", secret = "..." }}')
        url, secret = webhook["url"], webhook["secret"]
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{where}: webhook url must be an http(s) URL, got {url!r}")
        try:
            key = secret_key(secret if isinstance(secret, str) else "")
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    emails = table.get("email", [])
    if isinstance(emails, str):
        emails = [emails]
    if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
        raise ConfigError(f"{where}: 'email' must be an address or a list of addresses")
    for address in emails:
        if not _EMAIL.fullmatch(address):
            raise ConfigError(f"{where}: not an e-mail address: {address!r}")
    if url is None and not emails:
        raise ConfigError(f"{where}: needs a 'webhook' or an 'email', or both")
    return Subscription(name, tenant, tuple(kinds), url, key, tuple(emails))


def parse_subscriptions(text: str, source: str = "subscriptions") -> Subscriptions:
    """Parse the TOML ``text``; ConfigError naming ``source`` and the problem if it is bad."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    unknown = set(data) - {"subscription"}
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    tables = data.get("subscription", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{source}: 'subscription' must be an array of tables ([[subscription]])")
    try:
        items = tuple(_subscription(i, t) for i, t in enumerate(tables))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    names = [s.name for s in items]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{source}: duplicate subscription name(s) {', '.join(duplicates)}")
    return Subscriptions(items)


class SubscriptionFile:
    """The subscriptions file, re-read when it changes; a bad version keeps the last good one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self.current = self._read()
        self.error: str | None = None

    def _read(self) -> Subscriptions:
        try:
            stat = self.path.stat()
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read subscriptions file {self.path}: {exc}") from exc
        self._stamp = (stat.st_mtime_ns, stat.st_size)
        return parse_subscriptions(text, str(self.path))

    def refresh(self) -> bool:
        """Re-read the file if it changed; True if a new version is now in use. A bad or missing
        file logs one error (per change) and keeps the current subscriptions."""
        try:
            stat = self.path.stat()
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        if stamp == self._stamp:
            return False
        try:
            self.current = self._read()
        except ConfigError as exc:
            self._stamp = stamp
            self.error = str(exc)
            log.error("subscriptions not reloaded, keeping the last good version: %s", exc)
            return False
        self.error = None
        log.info(
            "subscriptions reloaded from %s: %d subscriptions", self.path, len(self.current.items)
        )
        return True
