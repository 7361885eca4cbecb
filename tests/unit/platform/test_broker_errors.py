"""broker_errors: one-line BrokerError with the cause aiokafka only logs."""

from __future__ import annotations

import logging

import pytest
from aiokafka.errors import KafkaConnectionError

from fairuse.errors import BrokerError
from fairuse.kafka import broker_errors
from fairuse.settings import KafkaSettings

SETTINGS = KafkaSettings(bootstrap="kafka.example:9093")


def test_the_logged_cause_joins_the_message() -> None:
    with pytest.raises(BrokerError) as raised, broker_errors(SETTINGS):
        logging.getLogger("aiokafka.client").error("Unable connect: %s", "Authentication failed")
        raise KafkaConnectionError("Unable to bootstrap from [...]")

    assert str(raised.value) == (
        "Kafka broker unreachable or failing at kafka.example:9093: "
        "KafkaConnectionError: Unable to bootstrap from [...]; "
        "Unable connect: Authentication failed"
    )
    assert isinstance(raised.value.__cause__, KafkaConnectionError)


def test_a_timeout_without_text_is_named() -> None:
    with (
        pytest.raises(BrokerError, match=r"kafka\.example:9093: TimeoutError$"),
        broker_errors(SETTINGS),
    ):
        raise TimeoutError


def test_other_errors_pass_through_and_the_log_handler_is_removed() -> None:
    handlers_before = list(logging.getLogger("aiokafka").handlers)

    with pytest.raises(ValueError, match="not a broker problem"), broker_errors(SETTINGS):
        raise ValueError("not a broker problem")

    assert logging.getLogger("aiokafka").handlers == handlers_before
