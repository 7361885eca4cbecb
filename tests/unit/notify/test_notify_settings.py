"""Notifier settings from the environment, and the command's start-up errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairuse.cli import main
from fairuse.errors import ConfigError
from fairuse.settings import NotifySettings, load_settings


@pytest.mark.parametrize(
    "env",
    [
        {"FAIRUSE_NOTIFY_SMTP_TLS": "ssl"},
        {"FAIRUSE_NOTIFY_RETRY_MAX_AGE_S": "999999999"},
        {"FAIRUSE_NOTIFY_RETRY_JITTER": "1.5"},
        {"FAIRUSE_NOTIFY_TOPICS": "violations,nope"},
        {"FAIRUSE_NOTIFY_HTTP_TIMEOUT_S": "soon"},
        {"FAIRUSE_NOTIFY_TARGET_CONCURRENCY": "0"},
        {"FAIRUSE_NOTIFY_OFFSET_RESET": "middle"},
    ],
)
def test_bad_values_are_refused_naming_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="FAIRUSE_NOTIFY_"):
        load_settings(env)


def test_values_are_typed_and_defaults_kept() -> None:
    loaded = load_settings(
        {
            "FAIRUSE_NOTIFY_RETRY_INITIAL_S": "0.5",
            "FAIRUSE_NOTIFY_WEB_PORT": "0",
            "FAIRUSE_NOTIFY_SUBSCRIPTIONS": "/etc/fairuse/subs.toml",
            "FAIRUSE_NOTIFY_TOPICS": "violations, enforcement,dead-letter",
        }
    )
    assert loaded.notify == NotifySettings(
        retry_initial_s=0.5,
        web_port=0,
        subscriptions=Path("/etc/fairuse/subs.toml"),
        topics=("violations", "enforcement", "dead-letter"),
    )
    assert NotifySettings().retry_max_age_s == 24 * 3600


def test_notify_without_a_subscriptions_file_stops_with_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("FAIRUSE_NOTIFY_SUBSCRIPTIONS", raising=False)
    assert main(["notify"]) == 2
    assert "set FAIRUSE_NOTIFY_SUBSCRIPTIONS" in capsys.readouterr().err
    bad = tmp_path / "subs.toml"
    bad.write_text("[[subscription]]\nname = 'x'\n")
    assert main(["notify", "--subscriptions", str(bad), "--web-port", "0"]) == 2
    assert "'tenant'" in capsys.readouterr().err
