"""The Docker path of the broker fixture runs apache/kafka with our broker settings."""

from __future__ import annotations

import re

from kafka_support import KAFKA_SCRIPTS, container_env


def _image_setting_name(env_name: str) -> str:
    # The apache/kafka image's rule: strip KAFKA_, "___" -> "-", "__" -> "_", "_" -> ".".
    parts = re.split(r"(___|__|_)", env_name.removeprefix("KAFKA_").lower())
    return "".join({"___": "-", "__": "_", "_": "."}.get(part, part) for part in parts)


def _template_settings() -> dict[str, str]:
    lines = (KAFKA_SCRIPTS / "server.properties.template").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_every_template_setting_reaches_the_container_except_addresses_and_paths() -> None:
    env = container_env(45678)
    in_container = {_image_setting_name(name): value for name, value in env.items()}

    template = _template_settings()
    differing = {k for k in template if in_container.get(k) != template[k]}
    assert differing == {
        "listeners",
        "advertised.listeners",
        "controller.quorum.voters",
        "log.dirs",
    }
    assert "log.dirs" not in in_container  # the image's writable default is kept


def test_clients_are_told_the_published_host_port() -> None:
    env = container_env(45678)

    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://127.0.0.1:45678"
    assert env["KAFKA_LOG_MESSAGE_TIMESTAMP_TYPE"] == "LogAppendTime"
