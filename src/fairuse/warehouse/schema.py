"""The warehouse DDL: migration files under ``sql/`` rendered for one node or for a cluster.

One DDL source serves both layouts. Single node: plain MergeTree-family tables. Cluster
(``cluster="name"``): ``<table>_local`` tables ``ON CLUSTER`` with Replicated engines, plus a
``Distributed`` table ``<table>`` sharded by ``cityHash64(tenant_id)``; views attach to the local
tables; each ``ALTER TABLE`` of a local table is repeated on its Distributed table, so both keep
the same columns. Only the markers documented at the top of each ``.sql`` file are substituted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from fairuse.errors import WarehouseError

DEDUP_WINDOW_BLOCKS = 1000
DEFAULT_EVENTS_TTL_DAYS = 400
SHARDING_KEY = "cityHash64(tenant_id)"

_MARKER = re.compile(r"\{(table|ref|engine|events_ttl|settings)(?::([^{}]*(?:\([^()]*\))?))?\}")
_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")
_CREATE_TABLE = re.compile(r"^\s*CREATE TABLE IF NOT EXISTS \{table:(\w+)\}", re.MULTILINE)
_ALTER_TABLE = re.compile(r"^\s*ALTER TABLE (\{table:(\w+)\})", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered DDL file."""

    version: int
    name: str
    text: str


def migrations() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    found = []
    for entry in resources.files("fairuse.warehouse").joinpath("sql").iterdir():
        match = _FILE.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def split_statements(text: str) -> list[str]:
    """The statements of a DDL file (split at ``;`` ending a line, comment-only parts dropped)."""
    statements = []
    for part in re.split(r";\s*$", text, flags=re.MULTILINE):
        code = "\n".join(line for line in part.splitlines() if not line.lstrip().startswith("--"))
        if code.strip():
            statements.append(code.strip())
    return statements


def _replicated(engine: str, table: str) -> str:
    kind, _, args = engine.partition("(")
    args = args.rstrip(")").strip()
    path = f"'/clickhouse/tables/{{shard}}/{{database}}/{table}', '{{replica}}'"
    return f"Replicated{kind}({path}{', ' + args if args else ''})"


def _substitute(match: re.Match[str], table: str, cluster: str | None, ttl_days: int) -> str:
    kind, arg = match[1], match[2] or ""
    if kind == "table":
        return f"{arg}_local ON CLUSTER {cluster}" if cluster else arg
    if kind == "ref":
        return f"{arg}_local" if cluster else arg
    if kind == "engine":
        return _replicated(arg, f"{table}_local") if cluster else arg
    if kind == "events_ttl":
        return f"TTL toDateTime(ts) + INTERVAL {ttl_days} DAY" if ttl_days else ""
    return f"non_replicated_deduplication_window = {DEDUP_WINDOW_BLOCKS}"


def render(text: str, *, cluster: str | None = None, events_ttl_days: int = 0) -> list[str]:
    """The executable statements of migration ``text`` for one node or ``cluster``."""
    if cluster is not None and not re.fullmatch(r"[A-Za-z0-9_]+", cluster):
        raise WarehouseError(f"cluster name must be [A-Za-z0-9_]+, got {cluster!r}")
    if events_ttl_days < 0:
        raise WarehouseError(f"events TTL must be >= 0 days, got {events_ttl_days}")
    statements: list[str] = []
    for statement in split_statements(text):
        created = _CREATE_TABLE.search(statement)
        table = created[1] if created else ""
        rendered = _MARKER.sub(
            lambda m, table=table: _substitute(m, table, cluster, events_ttl_days), statement
        )
        statements.append(re.sub(r"\n\s*\n", "\n", rendered))
        altered = _ALTER_TABLE.search(statement)
        if cluster and altered:
            # The Distributed table after its local tables: it never names a column they lack.
            start, end = altered.span(1)
            distributed = statement[:start] + f"{altered[2]} ON CLUSTER {cluster}" + statement[end:]
            statements.append(
                _MARKER.sub(lambda m: _substitute(m, "", cluster, events_ttl_days), distributed)
            )
        if cluster and created:
            statements.append(
                f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER {cluster} AS {table}_local\n"
                f"ENGINE = Distributed({cluster}, currentDatabase(), {table}_local, "
                f"{SHARDING_KEY})"
            )
    return statements


def migrations_table_ddl(cluster: str | None = None) -> str:
    """DDL of ``schema_migrations``, the record of applied migration versions."""
    if cluster:
        head = f"schema_migrations ON CLUSTER {cluster}"
        path = "'/clickhouse/tables/{database}/schema_migrations'"
        engine = f"ReplicatedMergeTree({path}, '{{replica}}')"
    else:
        head, engine = "schema_migrations", "MergeTree()"
    return (
        f"CREATE TABLE IF NOT EXISTS {head}\n"
        "(\n    version UInt32,\n    name String,\n    applied_at DateTime64(3, 'UTC')\n)\n"
        f"ENGINE = {engine}\nORDER BY version\n"
        f"SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW_BLOCKS}"
    )


def render_all(*, cluster: str | None = None, events_ttl_days: int = 0) -> str:
    """The whole schema as one SQL script (what ``fairuse warehouse migrate --print`` shows)."""
    parts = [migrations_table_ddl(cluster)]
    for migration in migrations():
        statements = render(migration.text, cluster=cluster, events_ttl_days=events_ttl_days)
        statements[0] = f"-- migration {migration.version:04d}_{migration.name}\n{statements[0]}"
        parts.extend(statements)
    return ";\n\n".join(parts) + ";\n"
