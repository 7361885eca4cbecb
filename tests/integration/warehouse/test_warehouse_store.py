"""Schema, migrations, deduplicated retries and the chDB single-process lock, on a real store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from warehouse_support import wait_until

from fairuse.errors import WarehouseError
from fairuse.warehouse.client import INSERT_SETTINGS, StoreLockedError, connect
from fairuse.warehouse.migrate import applied_versions, migrate
from fairuse.warehouse.owner import QueryOwner, owner_file
from fairuse.warehouse.rows import TABLE_COLUMNS, columns_of, message_row
from fairuse.warehouse.schema import migrations, render_all, split_statements
from fairuse.warehouse.store import Reader

TABLES = {
    "events", "usage", "usage_daily", "usage_daily_by_user", "violations", "enforcement",
    "dead_letters", "notifications", "statements", "adjustments", "schema_migrations",
}  # fmt: skip


def test_migrations_apply_on_an_empty_store_and_are_idempotent(warehouse_dsn: str) -> None:
    client = connect(warehouse_dsn)
    try:
        assert migrate(client, events_ttl_days=30) == [
            "0001_initial",
            "0002_notifications",
            "0003_policy_fidelity",
            "0004_statements",
        ]
        assert migrate(client, events_ttl_days=30) == []
        assert applied_versions(client) == {m.version for m in migrations()}
        rows = client.query(
            "SELECT name, engine, engine_full FROM system.tables WHERE database = currentDatabase()"
        ).result_rows
        engines = {name: (engine, full) for name, engine, full in rows}
        assert set(engines) >= TABLES
        for name in TABLES:  # every table, view targets included, deduplicates retried inserts
            assert "non_replicated_deduplication_window = 1000" in engines[name][1], name
        assert "TTL toDateTime(ts) + toIntervalDay(30)" in engines["events"][1]
        assert engines["usage_daily"][0] == "SummingMergeTree"
        assert engines["violations"][0] == "ReplacingMergeTree"
        ts_type = client.query(
            "SELECT type FROM system.columns WHERE database = currentDatabase() "
            "AND table = 'events' AND name = 'ts'"
        ).result_rows
        assert ts_type == [("DateTime64(3, 'UTC')",)]
    finally:
        client.close()


def test_a_retried_insert_is_dropped_also_from_the_view_targets(warehouse_dsn: str) -> None:
    client = connect(warehouse_dsn)
    try:
        migrate(client, events_ttl_days=0)
        record = (
            b'{"tenant_id":"t","metric":"audio_hours","day":"2026-11-03","weighted_ms":7200000.0,'
            b'"raw_ms":3600000,"session_id":"s","user_id":"u","event_id":"e"}'
        )
        table, row = message_row("usage", record, "usage/0/0")
        for _ in range(3):  # the same block with the same token, as after a crash
            client.insert(
                table, columns_of([row]), column_names=list(TABLE_COLUMNS[table]),
                column_oriented=True,
                settings={**INSERT_SETTINGS, "insert_deduplication_token": "usage-0-0-0-usage"},
            )  # fmt: skip
        assert client.query("SELECT count() FROM usage").result_rows == [(1,)]
        for view_target in ("usage_daily", "usage_daily_by_user"):
            result = client.query(f"SELECT sum(accruals), sum(weighted_ms) FROM {view_target}")
            assert result.result_rows == [(1, 7_200_000.0)], view_target
    finally:
        client.close()


def test_cluster_rendering_is_valid_sql_for_the_engine(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'warehouse'}")
    try:
        script = render_all(cluster="prod", events_ttl_days=400)
        statements = split_statements(script)
        # migrations table, 0001 objects and their Distributed tables, 0002's table and its own,
        # 0003's two ALTERs on the local tables and again on their Distributed tables, 0004's two
        # tables and their own
        assert len(statements) == 1 + 9 + 7 + 2 + 2 * 2 + 4
        for statement in statements:  # chDB cannot run ON CLUSTER, but its parser checks it
            formatted = client.query("SELECT formatQuery({q:String})", parameters={"q": statement})
            assert "ON CLUSTER prod" in formatted.result_rows[0][0]
        with pytest.raises(Exception, match=r"(?i)cluster|distributed|not supported|zookeeper"):
            client.command(statements[1])
    finally:
        client.close()


def _holder(store: Path) -> subprocess.Popen[str]:
    code = (
        "import sys, clickhouse_connect; "
        f"c = clickhouse_connect.get_client(dsn='chdb://{store}'); c.query('SELECT 1'); "
        "print('ready', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    return holder


def test_a_held_store_without_an_owner_gives_one_clear_line(tmp_path: Path) -> None:
    store = tmp_path / "warehouse"
    holder = _holder(store)
    try:
        with pytest.raises(StoreLockedError) as caught:
            Reader(f"chdb://{store}")
        message = str(caught.value)
        assert str(store) in message and "BAD_ARGUMENTS" not in message
        # An owner file naming the holder but nobody answering on its port: the pid is named.
        owner_file(store).write_text(
            json.dumps({"pid": holder.pid, "host": "127.0.0.1", "port": 9, "store": str(store)})
        )
        with pytest.raises(StoreLockedError, match=f"pid {holder.pid}"):
            Reader(f"chdb://{store}").query("SELECT 1")
    finally:
        holder.communicate("")


def test_other_processes_query_through_the_owner_read_only(tmp_path: Path) -> None:
    store = tmp_path / "warehouse"
    client = connect(f"chdb://{store}")
    migrate(client, events_ttl_days=0)
    owner = QueryOwner(client, store).start()
    script = (
        "import sys; from fairuse.warehouse.store import Reader; "
        f"r = Reader('chdb://{store}'); assert r.via_owner is not None; "
        "print(r.query('SELECT count() AS n FROM events WHERE tenant_id = {t:String}', "
        "{'t': 'x'}).rows); "
        "from fairuse.warehouse.owner import query_owner\n"
        "try:\n"
        "    query_owner(r.via_owner, 'INSERT INTO events (event_id) VALUES (1)', {})\n"
        "except Exception as e: print('refused:', e)\n"
        "try:\n"
        "    query_owner(r.via_owner, 'SELECT 1; DROP TABLE events', {})\n"
        "except Exception as e: print('refused:', e)\n"
    )
    try:
        wait_until(owner_file(store).exists, 10, "the owner file")
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
    finally:
        owner.close()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "[[0]]"
    assert lines[1].startswith("refused:") and "read-only" in lines[1]
    assert lines[2].startswith("refused:")
    assert not owner_file(store).exists()


def test_month_must_be_well_formed() -> None:
    from fairuse.warehouse.reports import usage_totals

    with pytest.raises(WarehouseError, match="YYYY-MM"):
        usage_totals("t", "2026-13")


def test_values_round_trip_through_the_column_types(warehouse_dsn: str) -> None:
    from fairuse.records import Enforcement, dead_letter

    step = Enforcement(
        enforcement_id="n1", tenant_id="t", kind="action", action="charge",
        ts=1_793_577_600_123, effective_at=1_793_577_600_999, strikes=("v1", "v2"),
    )  # fmt: skip
    letter = dead_letter(b"\xff\x00", "bad_json", "d", source="s/0/1")  # ts unknown: NULL
    client = connect(warehouse_dsn)
    try:
        migrate(client, events_ttl_days=0)
        for table, raw in (("enforcement", step.to_json()), ("dead_letters", letter.to_json())):
            target, row = message_row(table, raw, f"{table}/0/0")
            assert target == table
            client.insert(
                table, columns_of([row]), column_names=list(TABLE_COLUMNS[table]),
                column_oriented=True, settings=INSERT_SETTINGS,
            )  # fmt: skip
        got = client.query(
            "SELECT toUnixTimestamp64Milli(ts), toUnixTimestamp64Milli(effective_at), strikes "
            "FROM enforcement FINAL"
        ).result_rows
        assert got == [(1_793_577_600_123, 1_793_577_600_999, ["v1", "v2"])]
        got = client.query("SELECT ts, raw, raw_encoding FROM dead_letters FINAL").result_rows
        assert got == [(None, letter.raw, "base64")]
    finally:
        client.close()
