"""FAIRUSE_METRICS_* and FAIRUSE_SINK_WEB_* settings: defaults, parsing, clear errors."""

from __future__ import annotations

import pytest

from fairuse.errors import ConfigError
from fairuse.settings import OpsSettings, load_settings


def test_defaults_serve_the_sink_probes_on_6067_with_metrics_on() -> None:
    assert load_settings({}).ops == OpsSettings(
        metrics_enabled=True, lag_interval_s=10, sink_web_host="127.0.0.1", sink_web_port=6067
    )


def test_values_are_read_from_the_environment() -> None:
    ops = load_settings(
        {
            "FAIRUSE_METRICS_ENABLED": "false",
            "FAIRUSE_METRICS_LAG_INTERVAL_S": "2",
            "FAIRUSE_SINK_WEB_HOST": "0.0.0.0",
            "FAIRUSE_SINK_WEB_PORT": "0",
        }
    ).ops
    assert ops == OpsSettings(False, 2, "0.0.0.0", 0)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FAIRUSE_METRICS_ENABLED", "maybe", "must be true or false"),
        ("FAIRUSE_METRICS_LAG_INTERVAL_S", "0", "out of range"),
        ("FAIRUSE_SINK_WEB_PORT", "70000", "out of range"),
        ("FAIRUSE_SINK_WEB_PORT", "http", "must be an integer"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}.*{message}|{name} {message}"):
        load_settings({name: value})
