"""client_kwargs against a real SASL_SSL listener (SCRAM-SHA-512, TLS with our own CA).

The private broker keeps its PLAINTEXT listener (readiness probe, inter-broker) and adds a
SASL_SSL one through KAFKA_EXTRA_CONFIG; the SCRAM user is created when the storage is formatted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from fairuse.errors import BrokerError
from fairuse.kafka import client_kwargs
from fairuse.settings import KafkaSettings
from fairuse.topics import create_topics
from kafka_support import BrokerScripts, free_port, free_port_pair, scaled_s

USER, PASSWORD, STORE_PASSWORD = "meter", "s3cret-pw", "changeit"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca_and_broker_keystore(directory: Path) -> tuple[Path, Path]:
    """A test CA (``ca.pem``) and a PKCS12 keystore for 127.0.0.1 signed by it."""
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=fairuse-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=directory,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "broker.key",
        "-out",
        "broker.csr",
        cwd=directory,
    )
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "broker.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "broker.pem",
        cwd=directory,
    )
    _openssl("pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key",
             "-certfile", "ca.pem", "-name", "broker", "-passout", f"pass:{STORE_PASSWORD}",
             "-out", "broker.p12", cwd=directory)  # fmt: skip
    return directory / "ca.pem", directory / "broker.p12"


@pytest.fixture(scope="module")
def secured_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaSettings]:
    """Settings for the SASL_SSL listener of a private broker; the pipeline's topics exist."""
    directory = tmp_path_factory.mktemp("secured")
    ca_file, keystore = _make_ca_and_broker_keystore(directory)
    scripts = BrokerScripts(free_port_pair(), directory / "kafka")
    secure_port, plain, controller = free_port(), scripts.port, scripts.port + 1
    extra = directory / "sasl-ssl.properties"
    extra.write_text(
        f"listeners=PLAINTEXT://127.0.0.1:{plain},CONTROLLER://127.0.0.1:{controller},"
        f"SASL_SSL://127.0.0.1:{secure_port}\n"
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{plain},SASL_SSL://127.0.0.1:{secure_port}\n"
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
        "SASL_SSL:SASL_SSL\n"
        "sasl.enabled.mechanisms=SCRAM-SHA-512\n"
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
        "org.apache.kafka.common.security.scram.ScramLoginModule required;\n"
        "ssl.keystore.type=PKCS12\n"
        f"ssl.keystore.location={keystore}\n"
        f"ssl.keystore.password={STORE_PASSWORD}\n"
        f"ssl.key.password={STORE_PASSWORD}\n"
    )
    scripts.env["KAFKA_EXTRA_CONFIG"] = str(extra)
    scripts.env["KAFKA_SCRAM_CREDENTIALS"] = f"SCRAM-SHA-512=[name={USER},password={PASSWORD}]"
    started = scripts.run("start")
    assert started.returncode == 0, started.stderr
    try:
        settings = KafkaSettings(
            bootstrap=f"127.0.0.1:{secure_port}",
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=USER,
            sasl_password=PASSWORD,
            ssl_cafile=str(ca_file),
            events_partitions=2,
        )
        create_topics(settings)
        yield settings
    finally:
        scripts.run("stop")


def test_produce_and_consume_over_sasl_ssl_scram(secured_settings: KafkaSettings) -> None:
    topic = secured_settings.topic("events")

    async def round_trip() -> bytes:
        producer = AIOKafkaProducer(acks="all", **client_kwargs(secured_settings))
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"over TLS", key=b"tenant-a")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, auto_offset_reset="earliest", **client_kwargs(secured_settings)
        )
        await consumer.start()
        try:
            return (await asyncio.wait_for(consumer.getone(), timeout=scaled_s(40))).value
        finally:
            await consumer.stop()

    assert asyncio.run(round_trip()) == b"over TLS"


def test_a_wrong_password_is_a_broker_error(secured_settings: KafkaSettings) -> None:
    wrong = dataclasses.replace(secured_settings, sasl_password="not-it")

    with pytest.raises(BrokerError, match="Authentication failed"):
        create_topics(wrong)


def test_a_broker_certificate_from_an_untrusted_ca_is_a_broker_error(
    secured_settings: KafkaSettings,
) -> None:
    system_trust_only = dataclasses.replace(secured_settings, ssl_cafile=None)

    with pytest.raises(BrokerError, match="certificate verify failed"):
        create_topics(system_trust_only)
