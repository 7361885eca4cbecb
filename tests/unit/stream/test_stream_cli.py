"""``fairuse worker`` and ``fairuse policy publish`` argument handling (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairuse.cli import build_parser, main


def test_publish_rejects_a_bad_policy_before_touching_the_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIRUSE_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # nothing listens there
    bad = tmp_path / "bad.toml"
    bad.write_text('[[revision]]\nid = "r1"\neffective_from = 2021-01-12T00:00:00Z\n')
    assert main(["policy", "publish", str(bad)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("fairuse policy: ") and f"{bad}:" in error and "missing field" in error


def test_publish_of_a_missing_file_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "publish", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read policy file" in capsys.readouterr().err


def test_worker_options_override_settings() -> None:
    from fairuse.stream.cli import _worker_settings

    args = build_parser().parse_args(["worker", "--web-port", "7001", "--app-id", "blue"])
    settings = _worker_settings(args)
    assert settings.worker.web_port == 7001 and settings.worker.app_id == "blue"
