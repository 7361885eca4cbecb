"""``fairuse topics create|list`` against the real broker, and its one-line failure."""

from __future__ import annotations

import uuid

import pytest

from fairuse.cli import main
from fairuse.settings import TOPIC_NAMES


def test_create_then_list_prints_every_topic(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"cli{uuid.uuid4().hex[:8]}."
    monkeypatch.setenv("FAIRUSE_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("FAIRUSE_KAFKA_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("FAIRUSE_KAFKA_EVENTS_PARTITIONS", "3")

    assert main(["topics", "create"]) == 0
    created = capsys.readouterr().out.splitlines()
    assert main(["topics", "create"]) == 0
    again = capsys.readouterr().out.splitlines()
    assert main(["topics", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()

    assert created == [f"{prefix}{name}\tcreated" for name in TOPIC_NAMES]
    assert again == [f"{prefix}{name}\texists" for name in TOPIC_NAMES]
    assert listed == sorted(
        f"{prefix}{name}\tpartitions={1 if name == 'policy' else 3}" for name in TOPIC_NAMES
    )


def test_an_unreachable_broker_is_one_line_on_stderr_and_exit_2(
    free_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAIRUSE_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port}")

    assert main(["topics", "create"]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(
        f"fairuse topics: Kafka broker unreachable or failing at 127.0.0.1:{free_port}"
    )
