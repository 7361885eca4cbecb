"""client_kwargs: aiokafka connection settings for plain, TLS and SASL clusters."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from fairuse.errors import ConfigError
from fairuse.kafka import client_kwargs
from fairuse.settings import KafkaSettings, load_settings


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed CA certificate (PEM) with the common name ``fairuse-test-ca``."""
    directory = tmp_path_factory.mktemp("ca")
    cert = directory / "ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=fairuse-test-ca", "-keyout", str(directory / "ca.key"), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert


def _common_names(context: ssl.SSLContext) -> list[str]:
    return [
        value for cert in context.get_ca_certs() for rdn in cert["subject"]
        for key, value in rdn if key == "commonName"
    ]  # fmt: skip


def test_plaintext_has_only_bootstrap_and_protocol() -> None:
    kwargs = client_kwargs(KafkaSettings(bootstrap="broker-1:9092,broker-2:9092"))

    assert kwargs == {
        "bootstrap_servers": "broker-1:9092,broker-2:9092",
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_ssl_scram_from_environment_trusts_the_ca_file(ca_file: Path) -> None:
    settings = load_settings(
        {
            "FAIRUSE_KAFKA_BOOTSTRAP": "kafka.example:9093",
            "FAIRUSE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "FAIRUSE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "FAIRUSE_KAFKA_SASL_USERNAME": "meter",
            "FAIRUSE_KAFKA_SASL_PASSWORD": "s3cret",
            "FAIRUSE_KAFKA_SSL_CAFILE": str(ca_file),
        }
    ).kafka

    kwargs = client_kwargs(settings)

    context = kwargs.pop("ssl_context")
    assert kwargs == {
        "bootstrap_servers": "kafka.example:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "meter",
        "sasl_plain_password": "s3cret",
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert _common_names(context) == ["fairuse-test-ca"]


def test_sasl_plaintext_plain_has_no_ssl_context() -> None:
    settings = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password="p",
    )

    kwargs = client_kwargs(settings)

    assert "ssl_context" not in kwargs
    assert kwargs["sasl_mechanism"] == "PLAIN"


def test_ssl_without_ca_file_uses_the_system_trust_store() -> None:
    kwargs = client_kwargs(KafkaSettings(security_protocol="SSL"))

    assert kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert "sasl_mechanism" not in kwargs


def test_missing_ca_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"

    with pytest.raises(ConfigError, match=r"nope\.pem"):
        client_kwargs(KafkaSettings(security_protocol="SSL", ssl_cafile=str(missing)))


def test_sasl_without_credentials_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="SASL mechanism, username and password"):
        client_kwargs(KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256"))


def test_password_is_not_in_the_settings_repr() -> None:
    settings = KafkaSettings(sasl_password="s3cret")

    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_aiokafka_clients_accept_the_kwargs(mechanism: str, ca_file: Path) -> None:
    settings = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism=mechanism,  # type: ignore[arg-type]
        sasl_username="u",
        sasl_password="p",
        ssl_cafile=str(ca_file),
    )

    async def construct_and_close() -> None:
        # A wrong keyword name raises TypeError, a bad protocol or mechanism ValueError.
        kwargs = client_kwargs(settings)
        producer = AIOKafkaProducer(**kwargs)
        consumer = AIOKafkaConsumer("t", group_id="g", **kwargs)
        admin = AIOKafkaAdminClient(**kwargs)
        await producer.stop()
        await consumer.stop()
        await admin.close()

    asyncio.run(construct_and_close())
