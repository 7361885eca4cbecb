"""Connection settings for Kafka clients (aiokafka and Faust) built from :class:`KafkaSettings`."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from fairuse.errors import BrokerError, ConfigError
from fairuse.settings import KafkaSettings

__all__ = ["broker_errors", "check_broker", "client_kwargs", "ssl_context"]


def ssl_context(settings: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context for SSL/SASL_SSL (trusting ``ssl_cafile`` if set), else ``None``."""
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    try:
        return create_ssl_context(cafile=settings.ssl_cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the Kafka CA file {settings.ssl_cafile!r}: {exc}") from exc


def client_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments that connect any aiokafka client (producer, consumer, admin).

    Contains ``bootstrap_servers`` and ``security_protocol``; ``ssl_context`` for SSL and
    SASL_SSL; ``sasl_mechanism``, ``sasl_plain_username`` and ``sasl_plain_password`` for
    SASL (aiokafka uses the ``sasl_plain_*`` names for SCRAM too).
    """
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "security_protocol": settings.security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        if not (settings.sasl_mechanism and settings.sasl_username and settings.sasl_password):
            raise ConfigError(
                f"{settings.security_protocol} needs a SASL mechanism, username and password"
            )
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = settings.sasl_password
    return kwargs


class _LastError(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.message: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.message = record.getMessage()


@contextmanager
def broker_errors(settings: KafkaSettings) -> Iterator[None]:
    """Turn aiokafka's connection and request failures inside the block into one-line
    :class:`BrokerError`s naming the broker and the cause.

    aiokafka reports a failed bootstrap as "Unable to bootstrap" and only logs why (refused,
    TLS verification, SASL authentication); the logged reason is added to the message.
    """
    last_error = _LastError()
    logger = logging.getLogger("aiokafka")
    logger.addHandler(last_error)
    try:
        yield
    except (KafkaError, OSError) as exc:  # OSError covers TimeoutError
        detail = str(exc) or type(exc).__name__
        if last_error.message and last_error.message not in detail:
            detail = f"{detail}; {last_error.message}"
        message = f"Kafka broker unreachable or failing at {settings.bootstrap}: {detail}"
        raise BrokerError(message) from exc
    finally:
        logger.removeHandler(last_error)


async def check_broker(settings: KafkaSettings, timeout_s: float = 5.0) -> int:
    """Send one metadata request; return the broker count or raise :class:`BrokerError`."""
    admin = AIOKafkaAdminClient(request_timeout_ms=int(timeout_s * 1000), **client_kwargs(settings))
    try:
        with broker_errors(settings):
            async with asyncio.timeout(timeout_s):
                await admin.start()
                cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    return len(cluster["brokers"])
