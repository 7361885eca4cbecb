"""Report output (table, CSV, JSON), JSON-able values, read-only checks and settings."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from fairuse.errors import ConfigError, WarehouseError
from fairuse.settings import load_settings
from fairuse.warehouse.client import embedded_path, is_embedded, redact
from fairuse.warehouse.output import render
from fairuse.warehouse.owner import check_read_only
from fairuse.warehouse.result import QueryResult, plain

RESULT = QueryResult(
    ["day", "metric", "amount"],
    [["2026-11-02", "audio_hours", 37.046456], ["2026-11-02", "api_calls", 1279.0]],
)


def test_table_aligns_columns_and_rounds_floats() -> None:
    assert render(RESULT, "table", "Usage").splitlines() == [
        "Usage",
        "day         metric          amount",
        "----------  -----------  ---------",
        "2026-11-02  audio_hours     37.046",
        "2026-11-02  api_calls    1,279.000",
    ]
    assert render(QueryResult([], []), "table", "T") == "T\n(no rows)"


def test_csv_and_json_keep_full_precision() -> None:
    assert render(RESULT, "csv").splitlines()[1] == "2026-11-02,audio_hours,37.046456"
    assert json.loads(render(RESULT, "json"))[0] == {
        "day": "2026-11-02", "metric": "audio_hours", "amount": 37.046456,
    }  # fmt: skip


def test_values_become_json_able() -> None:
    stamp = dt.datetime(2026, 11, 2, 1, 2, 3, 45000, tzinfo=dt.UTC)
    assert plain(stamp) == "2026-11-02 01:02:03.045"
    assert plain(dt.date(2026, 11, 2)) == "2026-11-02"
    assert plain(["a", dt.date(2026, 1, 1)]) == ["a", "2026-01-01"]
    assert plain(float("nan")) is None


@pytest.mark.parametrize(
    "sql",
    ["SELECT 1", "  with x AS (SELECT 1) SELECT * FROM x", "SHOW TABLES", "DESCRIBE events"],
)
def test_read_only_statements_pass(sql: str) -> None:
    check_read_only(sql)


@pytest.mark.parametrize(
    "sql",
    ["INSERT INTO events VALUES (1)", "DROP TABLE events", "SELECT 1; DROP TABLE events", ""],
)
def test_other_statements_are_refused(sql: str) -> None:
    with pytest.raises(WarehouseError, match="read-only"):
        check_read_only(sql)


def test_dsn_helpers() -> None:
    assert is_embedded("chdb:///var/warehouse") and not is_embedded("http://h:8123")
    assert str(embedded_path("chdb:///var/warehouse")) == "/var/warehouse"
    assert redact("http://user:secret@host:8123/db") == "http://user:***@host:8123/db"


def test_warehouse_settings_from_the_environment() -> None:
    settings = load_settings(
        {
            "FAIRUSE_WAREHOUSE_EVENTS_TTL_DAYS": "0",
            "FAIRUSE_WAREHOUSE_QUERY_PORT": "8124",
            "FAIRUSE_SINK_BATCH_ROWS": "1000",
            "FAIRUSE_SINK_BATCH_MS": "250",
        }
    ).warehouse
    assert (settings.events_ttl_days, settings.query_port) == (0, 8124)
    assert (settings.sink_batch_rows, settings.sink_batch_ms) == (1000, 250)
    assert load_settings({}).warehouse.events_ttl_days == 400
    with pytest.raises(ConfigError, match="FAIRUSE_SINK_BATCH_ROWS"):
        load_settings({"FAIRUSE_SINK_BATCH_ROWS": "0"})
    with pytest.raises(ConfigError, match="FAIRUSE_WAREHOUSE_QUERY_PORT"):
        load_settings({"FAIRUSE_WAREHOUSE_QUERY_PORT": "70000"})


def test_daily_limit_line_is_per_seat_hours_times_seats() -> None:
    from fairuse.policy import Limits
    from fairuse.warehouse.plot import daily_limit_hours

    limits = Limits(audio_hours_per_day=8, video_hours_per_day=5)
    assert daily_limit_hours("audio_hours", limits, 3) == 24
    assert daily_limit_hours("video_hours", limits, 0) == 5  # at least one seat
