"""The one root error of fairuse and its subclasses per area.

Expected failures (bad configuration, bad policy file, unreachable broker) raise a subclass of
``FairUseError``; the CLI prints its message as one line and exits non-zero.
"""


class FairUseError(Exception):
    """Root of every error fairuse raises on purpose."""


class ConfigError(FairUseError):
    """Settings or environment variables are invalid."""


class PolicyError(FairUseError):
    """A policy file is invalid; the message names the line and field."""


class BrokerError(FairUseError):
    """The Kafka broker cannot be reached or refused a request."""


class WarehouseError(FairUseError):
    """The ClickHouse store (server or embedded chDB) failed or is held by another process."""
