"""Query results for people and programs: a terminal table, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Literal

from fairuse.warehouse.result import QueryResult

Format = Literal["table", "csv", "json"]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def table(result: QueryResult, title: str = "") -> str:
    """``result`` as an aligned text table (numbers right-aligned, floats to 3 decimals)."""
    lines = [title] if title else []
    if not result.rows:
        return "\n".join([*lines, "(no rows)"])
    cells = [[_cell(v) for v in row] for row in result.rows]
    numeric = [
        all(isinstance(row[i], (int, float)) or row[i] is None for row in result.rows)
        for i in range(len(result.columns))
    ]
    widths = [
        max(len(name), *(len(row[i]) for row in cells)) for i, name in enumerate(result.columns)
    ]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    lines.append(line(list(result.columns)))
    lines.append(line(["-" * w for w in widths]))
    lines.extend(line(row) for row in cells)
    return "\n".join(lines)


def render(result: QueryResult, fmt: Format, title: str = "") -> str:
    """``result`` in ``fmt``; CSV and JSON keep full precision."""
    if fmt == "json":
        return json.dumps(result.dicts(), ensure_ascii=False)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows(result.rows)
        return buffer.getvalue().rstrip("\n")
    return table(result, title)
