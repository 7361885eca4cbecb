"""Read access for analysts: the store directly when free, through its owner when held."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from fairuse.errors import WarehouseError
from fairuse.warehouse.client import StoreLockedError, connect, embedded_path, is_embedded
from fairuse.warehouse.owner import OwnerInfo, check_read_only, query_owner, read_owner
from fairuse.warehouse.result import QueryResult, run_query

Query = Callable[[str, dict[str, Any]], QueryResult]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Reader:
    """Runs read-only queries on the warehouse named by a DSN (``readonly=1`` every time)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._client: Any = None
        self._owner: OwnerInfo | None = None
        if is_embedded(dsn):
            owner = read_owner(embedded_path(dsn))
            if owner is not None and _alive(owner.pid) and owner.pid != os.getpid():
                self._owner = owner
        if self._owner is None:
            self._client = connect(dsn)

    @property
    def via_owner(self) -> OwnerInfo | None:
        """The owner process queries go through, or None when the store is read directly."""
        return self._owner

    def query(self, sql: str, params: dict[str, Any] | None = None) -> QueryResult:
        """Run one read-only statement with bound ``params``."""
        check_read_only(sql)
        if self._owner is not None:
            try:
                return query_owner(self._owner, sql, params or {})
            except WarehouseError as exc:
                if _alive(self._owner.pid):
                    raise StoreLockedError(
                        f"the embedded store {self._owner.store} is held by pid "
                        f"{self._owner.pid}, whose query service failed: {exc}"
                    ) from exc
                self._owner, self._client = None, connect(self.dsn)
        return run_query(self._client, sql, params or {}, settings={"readonly": 1})

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the store (lets another process open the embedded directory)."""
        if self._client is not None:
            self._client.close()
            self._client = None
