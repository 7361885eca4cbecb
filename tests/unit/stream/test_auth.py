"""Bearer tokens of the worker's HTTP API."""

from __future__ import annotations

import pytest

from fairuse.errors import ConfigError
from fairuse.stream.auth import ApiTokens

TOKENS = ApiTokens.parse("admin-secret", "acme:tok-a, globex:tok-g")


@pytest.mark.parametrize(
    ("header", "tenant", "access"),
    [
        ("Bearer admin-secret", "acme", "ok"),
        ("bearer admin-secret", "anyone", "ok"),
        ("Bearer tok-a", "acme", "ok"),
        ("Bearer tok-a", "globex", "forbidden"),
        ("Bearer tok-g", "globex", "ok"),
        ("Bearer wrong", "acme", "unauthenticated"),
        ("Basic admin-secret", "acme", "unauthenticated"),
        ("Bearer ", "acme", "unauthenticated"),
        (None, "acme", "unauthenticated"),
    ],
)
def test_access(header: str | None, tenant: str, access: str) -> None:
    assert TOKENS.check(header, tenant) == access


def test_no_tokens_configured_means_nobody_gets_in() -> None:
    tokens = ApiTokens.parse(None, None)
    assert not tokens.configured
    assert tokens.check("Bearer anything", "acme") == "unauthenticated"


@pytest.mark.parametrize("bad", ["acme", "acme:", ":tok", "acme:tok,globex"])
def test_malformed_tenant_tokens_are_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="FAIRUSE_API_TENANT_TOKENS"):
        ApiTokens.parse(None, bad)


def test_tokens_do_not_show_in_repr() -> None:
    assert "admin-secret" not in repr(TOKENS) and "tok-a" not in repr(TOKENS)
