"""Query results as plain JSON-able values, identical whether read directly or via the owner."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fairuse.errors import WarehouseError
from fairuse.warehouse.client import UNKNOWN_TABLE, error_code


@dataclass(slots=True)
class QueryResult:
    """Column names and rows of JSON-able values (dates as ISO text)."""

    columns: list[str]
    rows: list[list[Any]]

    def dicts(self) -> list[dict[str, Any]]:
        """The rows as dicts keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def plain(value: Any) -> Any:
    """``value`` as a JSON-able value: datetimes ``YYYY-MM-DD HH:MM:SS.mmm`` (UTC), dates ISO."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="milliseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def run_query(
    client: Any, sql: str, params: dict[str, Any], settings: dict[str, Any] | None = None
) -> QueryResult:
    """Run ``sql`` with server-side bound ``params`` on ``client``; wrap engine errors."""
    try:
        result = client.query(sql, parameters=params, settings=settings or {})
    except Exception as exc:
        message = str(exc).strip().splitlines()[0][:500]
        if error_code(exc) == UNKNOWN_TABLE:
            message += " (an empty store? run `fairuse warehouse migrate` or `fairuse sink`)"
        raise WarehouseError(f"query failed: {message}") from exc
    rows = [[plain(v) for v in row] for row in result.result_rows]
    return QueryResult(list(result.column_names), rows)
