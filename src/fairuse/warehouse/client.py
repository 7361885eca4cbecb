"""One client for both stores: clickhouse-connect against a server or the embedded chDB.

``connect(dsn)`` takes ``http(s)://user:pass@host:port/db`` or ``chdb:///path``. chDB lets one
process at a time open a data directory; a second opener gets :class:`StoreLockedError` naming
the directory and the holder's pid (from the owner file) instead of the engine's BAD_ARGUMENTS.

Errors are told apart by their ClickHouse code (:func:`error_code`), never by their text:
:func:`is_transient` says whether trying the same request again can succeed.
"""

from __future__ import annotations

import fcntl
import logging
import re
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import Error as ClickHouseDriverError
from clickhouse_connect.driver.exceptions import OperationalError

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


# ClickHouse error codes (src/Common/ErrorCodes.cpp) fairuse acts on.
BAD_ARGUMENTS = 36
UNKNOWN_TABLE = 60
TRANSIENT_CODES = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED
        160,  # TOO_SLOW
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY (a replica lost its Keeper session)
        252,  # TOO_MANY_PARTS
        279,  # ALL_CONNECTION_TRIES_FAILED
        285,  # TOO_FEW_LIVE_REPLICAS
        319,  # UNKNOWN_STATUS_OF_INSERT
        394,  # QUERY_WAS_CANCELLED
        425,  # SYSTEM_ERROR
        439,  # CANNOT_SCHEDULE_TASK
        473,  # DEADLOCK_AVOIDED
        999,  # KEEPER_EXCEPTION
    }
)
"""Codes meaning "the request was fine, try it again": overload, timeouts, replicas and Keeper
away. Every other code (schema, types, syntax, permissions) fails the same way every time."""

_CODE_FIELD = re.compile(r"\bCode: (\d+)\.")  # the engine's "Code: N. DB::Exception: ..." header


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code of ``exc`` or of an exception it was raised from, if any.

    clickhouse-connect sets ``code`` on its errors; the chdb engine's own RuntimeError (at open)
    carries the code only in its ``Code: N.`` header, which is read then.
    """
    seen: BaseException | None = exc
    while seen is not None:
        code = getattr(seen, "code", None)
        if isinstance(code, int):
            return code
        if isinstance(seen, RuntimeError):
            found = _CODE_FIELD.search(str(seen))
            if found:
                return int(found.group(1))
        seen = seen.__cause__ or seen.__context__
    return None


def is_transient(exc: BaseException) -> bool:
    """True if the same request may succeed later: a network failure or timeout (no code), or
    a ClickHouse code in :data:`TRANSIENT_CODES`. Schema, type and programming errors are not."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    code = error_code(exc)
    if code is not None:
        return code in TRANSIENT_CODES
    return isinstance(exc, OperationalError)  # the driver's network errors carry no code


def describe(exc: BaseException) -> str:
    """``exc`` in one line: its code and name when known, and the first line of its text."""
    code = error_code(exc)
    name = exc.name if isinstance(exc, ClickHouseDriverError) and exc.name else None
    head = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    if code is None:
        return head
    return f"code {code}{f' ({name})' if name else ''}: {head}"


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
    if not is_embedded(dsn):
        try:
            return clickhouse_connect.get_client(dsn=dsn)
        except Exception as exc:
            raise WarehouseError(f"cannot reach ClickHouse at {redact(dsn)}: {exc}") from exc
    path = embedded_path(dsn)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # No ``compress``: the chdb backend has no transport (it would warn it ignores it).
        client = clickhouse_connect.get_client(dsn=f"chdb://{path.resolve()}")
    except Exception as exc:
        if error_code(exc) != BAD_ARGUMENTS:  # the engine's answer to a directory it cannot have
            raise WarehouseError(f"cannot open the embedded store {path}: {exc}") from exc
        raise _refused(path) from exc
    return client


def _locked_by_another_process(path: Path) -> bool:
    """True if another process holds the engine's lock on ``path/status`` (an flock)."""
    try:
        with (path / "status").open("rb") as status:
            fcntl.flock(status, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when closed
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return False


def _refused(path: Path) -> WarehouseError:
    """Why chDB refused ``path``: another process holds it, or this one has another open."""
    if not _locked_by_another_process(path):
        return WarehouseError(
            f"this process already has another embedded store open; chDB opens one "
            f"directory per process (wanted {path})"
        )
    from fairuse.warehouse.owner import read_owner

    owner = read_owner(path)
    if owner is not None:
        return StoreLockedError(
            f"the embedded store {path} is held by pid {owner.pid}, which serves "
            f"read-only queries on 127.0.0.1:{owner.port} (fairuse report/sql use "
            "it); stop that process for anything else"
        )
    return StoreLockedError(
        f"the embedded store {path} is held by another process that serves no "
        f"queries (it locks {path / 'status'}); stop it and retry"
    )
