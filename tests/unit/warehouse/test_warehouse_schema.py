"""Schema rendering: one DDL source, single-node and cluster variants (checked as text)."""

from __future__ import annotations

import re

import pytest

from fairuse.errors import WarehouseError
from fairuse.warehouse.schema import migrations, render, render_all, split_statements

TABLES = (
    "events", "usage", "usage_daily", "usage_daily_by_user", "violations", "enforcement",
    "dead_letters",
)  # fmt: skip


def _initial() -> str:
    return migrations()[0].text


def test_migrations_are_numbered_from_one() -> None:
    assert [(m.version, m.name) for m in migrations()][:1] == [(1, "initial")]


def test_single_node_rendering_has_no_cluster_parts_and_dedups_every_table() -> None:
    statements = render(_initial(), events_ttl_days=400)
    text = "\n".join(statements)
    assert "ON CLUSTER" not in text and "Replicated" not in text and "Distributed" not in text
    assert "{" not in text.replace("{tenant", "")  # every marker substituted
    tables = [s for s in statements if s.startswith("CREATE TABLE")]
    assert [re.search(r"EXISTS (\w+)", s)[1] for s in tables] == list(TABLES)
    for statement in tables:
        assert "SETTINGS non_replicated_deduplication_window = 1000" in statement
        assert not re.search(r"\sDateTime[ (,]", statement)  # times: DateTime64(3, 'UTC')
    assert "TTL toDateTime(ts) + INTERVAL 400 DAY" in statements[0]


def test_events_ttl_zero_means_no_ttl() -> None:
    assert "TTL" not in render(_initial(), events_ttl_days=0)[0]
    with pytest.raises(WarehouseError):
        render(_initial(), events_ttl_days=-1)


def test_cluster_rendering_replicates_shards_by_tenant_and_attaches_views_locally() -> None:
    statements = render(_initial(), cluster="prod", events_ttl_days=400)
    for table in TABLES:
        (local,) = [
            s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS {table}_local ")
        ]
        assert f"{table}_local ON CLUSTER prod" in local
        path = f"'/clickhouse/tables/{{shard}}/{{database}}/{table}_local', '{{replica}}'"
        assert re.search(rf"ENGINE = Replicated\w*MergeTree\({re.escape(path)}\)", local)
        (dist,) = [s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS {table} ON")]
        assert dist == (
            f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER prod AS {table}_local\n"
            f"ENGINE = Distributed(prod, currentDatabase(), {table}_local, cityHash64(tenant_id))"
        )
    views = [s for s in statements if s.startswith("CREATE MATERIALIZED VIEW")]
    assert len(views) == 2
    for view in views:
        assert "_mv_local ON CLUSTER prod TO usage_daily" in view and "FROM usage_local" in view


def test_cluster_names_are_checked() -> None:
    with pytest.raises(WarehouseError, match="cluster name"):
        render_all(cluster="prod; DROP")


def test_split_statements_drops_comment_only_parts() -> None:
    assert split_statements("-- a\nSELECT 1;\n-- only a comment;\nSELECT 2;\n") == [
        "SELECT 1",
        "SELECT 2",
    ]


def test_cluster_alter_reaches_local_then_distributed_tables_with_the_same_columns() -> None:
    text = "ALTER TABLE {table:violations}\n    ADD COLUMN IF NOT EXISTS user_id String;\n"
    assert render(text) == ["ALTER TABLE violations\n    ADD COLUMN IF NOT EXISTS user_id String"]
    assert render(text, cluster="prod") == [
        "ALTER TABLE violations_local ON CLUSTER prod\n    ADD COLUMN IF NOT EXISTS user_id String",
        "ALTER TABLE violations ON CLUSTER prod\n    ADD COLUMN IF NOT EXISTS user_id String",
    ]


def test_every_altered_table_of_a_cluster_keeps_local_and_distributed_columns_alike() -> None:
    altered: dict[str, list[str]] = {}
    for migration in migrations():
        for statement in render(migration.text, cluster="prod"):
            match = re.match(r"ALTER TABLE (\w+) ON CLUSTER prod\n(.*)", statement, re.DOTALL)
            if match:
                altered.setdefault(match[1].removesuffix("_local"), []).append(match[2])
    assert altered, "no migration alters a table"
    for table, changes in altered.items():
        assert len(changes) % 2 == 0 and changes[0::2] == changes[1::2], table
