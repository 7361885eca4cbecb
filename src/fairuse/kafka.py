"""Connection settings for Kafka clients (aiokafka and Faust) built from :class:`KafkaSettings`."""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context

from fairuse.errors import ConfigError
from fairuse.settings import KafkaSettings

__all__ = ["client_kwargs", "ssl_context"]


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
