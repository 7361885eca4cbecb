"""One client for both stores: clickhouse-connect against a server or the embedded chDB.

``connect(dsn)`` takes ``http(s)://user:pass@host:port/db`` or ``chdb:///path``. chDB lets one
process at a time open a data directory; a second opener gets :class:`StoreLockedError` naming
the directory and the holder's pid (from the owner file) instead of the engine's BAD_ARGUMENTS.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from fairuse.errors import WarehouseError

log = logging.getLogger(__name__)

# Every insert sets these explicitly: the sink batches itself (async_insert off, engine 26.x
# defaults it on) and retried blocks must also be dropped from materialized-view targets.
# On a cluster (Distributed tables) inserts reach the shards in the foreground, so a retried
# block keeps its deduplication token there (harmless on one node).
INSERT_SETTINGS: dict[str, Any] = {
    "async_insert": 0,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
    "insert_distributed_sync": 1,
}


class StoreLockedError(WarehouseError):
    """The embedded store's directory is held by another process that does not answer queries."""


def is_embedded(dsn: str) -> bool:
    """True for a chDB DSN (``chdb:///path``)."""
    return dsn.startswith("chdb:")


def embedded_path(dsn: str) -> Path:
    """The data directory of a chDB DSN."""
    if not is_embedded(dsn):
        raise WarehouseError(f"not an embedded store DSN: {redact(dsn)}")
    path = dsn.removeprefix("chdb:").removeprefix("//")
    return Path(path or ".")


def redact(dsn: str) -> str:
    """``dsn`` without its password, for messages."""
    head, sep, tail = dsn.partition("@")
    if not sep or "://" not in head:
        return dsn
    scheme, _, creds = head.partition("://")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}"


def connect(dsn: str) -> Client:
    """A clickhouse-connect client for ``dsn``; raise WarehouseError when it cannot be opened."""
    if is_embedded(dsn):
        path = embedded_path(dsn)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # No ``compress``: the chdb backend has no transport (it would warn it ignores it).
            return clickhouse_connect.get_client(dsn=f"chdb://{path.resolve()}")
        except Exception as exc:
            if "already initialized with path" in str(exc):
                raise WarehouseError(
                    f"this process already has another embedded store open; chDB opens one "
                    f"directory per process (wanted {path})"
                ) from exc
            if "BAD_ARGUMENTS" in str(exc) or "lock" in str(exc).lower():
                from fairuse.warehouse.owner import read_owner

                owner = read_owner(path)
                if owner is not None:
                    raise StoreLockedError(
                        f"the embedded store {path} is held by pid {owner.pid}, which serves "
                        f"read-only queries on 127.0.0.1:{owner.port} (fairuse report/sql use "
                        "it); stop that process for anything else"
                    ) from exc
                raise StoreLockedError(
                    f"the embedded store {path} is held by another process that serves no "
                    f"queries (it locks {path / 'status'}); stop it and retry"
                ) from exc
            raise WarehouseError(f"cannot open the embedded store {path}: {exc}") from exc
    try:
        return clickhouse_connect.get_client(dsn=dsn)
    except Exception as exc:
        raise WarehouseError(f"cannot reach ClickHouse at {redact(dsn)}: {exc}") from exc
