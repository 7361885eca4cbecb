"""Apply the schema's migrations once each, recording them in ``schema_migrations``."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from fairuse.errors import WarehouseError
from fairuse.warehouse.schema import migrations, migrations_table_ddl, render

log = logging.getLogger(__name__)


def applied_versions(client: Any) -> set[int]:
    """Versions already recorded in ``schema_migrations``."""
    result = client.query("SELECT version FROM schema_migrations")
    return {int(row[0]) for row in result.result_rows}


def migrate(client: Any, *, events_ttl_days: int, cluster: str | None = None) -> list[str]:
    """Apply pending migrations (idempotent); return the names applied now."""
    done: list[str] = []
    try:
        client.command(migrations_table_ddl(cluster))
        applied = applied_versions(client)
        for migration in migrations():
            if migration.version in applied:
                continue
            statements = render(migration.text, cluster=cluster, events_ttl_days=events_ttl_days)
            for statement in statements:
                client.command(statement)
            client.insert(
                "schema_migrations",
                [[migration.version], [migration.name], [dt.datetime.now(dt.UTC)]],
                column_names=["version", "name", "applied_at"],
                column_oriented=True,
                settings={"async_insert": 0},
            )
            name = f"{migration.version:04d}_{migration.name}"
            log.info("applied migration %s", name)
            done.append(name)
    except WarehouseError:
        raise
    except Exception as exc:
        raise WarehouseError(f"migration failed: {str(exc).strip().splitlines()[0]}") from exc
    return done
