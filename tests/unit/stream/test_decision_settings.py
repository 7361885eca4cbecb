"""FAIRUSE_DECISION_CACHE_MAX_AGE_S: the max-age gateways may cache a decision for."""

from __future__ import annotations

import pytest

from fairuse.errors import ConfigError
from fairuse.settings import load_settings


def test_default_and_override() -> None:
    assert load_settings({}).decision.cache_max_age_s == 5
    env = {"FAIRUSE_DECISION_CACHE_MAX_AGE_S": "0"}
    assert load_settings(env).decision.cache_max_age_s == 0


@pytest.mark.parametrize("raw", ["-1", "3601", "soon"])
def test_bad_values_are_refused_with_the_variable_named(raw: str) -> None:
    with pytest.raises(ConfigError, match="FAIRUSE_DECISION_CACHE_MAX_AGE_S"):
        load_settings({"FAIRUSE_DECISION_CACHE_MAX_AGE_S": raw})
