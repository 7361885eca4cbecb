"""Signed portal links: a token names one tenant (or every tenant) until its expiry."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairuse.errors import ConfigError
from fairuse.portal.links import ADMIN, parse_ttl, sign, verify

SECRET = "portal-secret"
TENANTS = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)


@given(tenant=TENANTS, expires=st.integers(1, 2**40))
def test_a_signed_token_names_its_tenant_until_it_expires(tenant: str, expires: int) -> None:
    token = sign(SECRET, tenant, expires)
    grant = verify(SECRET, token, expires - 0.5)
    assert grant is not None and grant.tenant == tenant and grant.may_read(tenant)
    assert not grant.may_read(tenant + "x") and not grant.admin
    assert verify(SECRET, token, expires) is None  # expired at its expiry


@given(tenant=TENANTS, position=st.integers(0, 10_000), char=st.sampled_from("AbZ0_-.x"))
def test_any_changed_character_invalidates_the_token(tenant: str, position: int, char: str) -> None:
    token = sign(SECRET, tenant, 2_000_000_000)
    index = position % len(token)
    tampered = token[:index] + char + token[index + 1 :]
    if tampered != token:
        grant = verify(SECRET, tampered, 1_000)
        # base64 padding bits may decode to the same payload; never to another grant
        assert grant is None or grant.tenant == tenant


def test_another_secret_another_tenant_and_garbage_are_refused() -> None:
    token = sign(SECRET, "acme", 2_000_000_000)
    assert verify("other-secret", token, 1_000) is None
    assert verify("", token, 1_000) is None
    payload, _, signature = token.partition(".")
    forged = sign(SECRET, "globex", 2_000_000_000).split(".")[0] + "." + signature
    assert verify(SECRET, forged, 1_000) is None
    for junk in ("", ".", "abc", payload, "a.b.c"):
        assert verify(SECRET, junk, 1_000) is None


def test_an_admin_token_reads_every_tenant() -> None:
    grant = verify(SECRET, sign(SECRET, ADMIN, 2_000_000_000), 1_000)
    assert grant is not None and grant.admin and grant.may_read("acme")


def test_signing_needs_a_secret_and_a_tenant() -> None:
    with pytest.raises(ConfigError, match="FAIRUSE_PORTAL_SECRET"):
        sign("", "acme", 10)
    with pytest.raises(ConfigError, match="tenant"):
        sign(SECRET, "a|b", 10)


@pytest.mark.parametrize(("text", "seconds"), [("12h", 43_200), ("30m", 1800), ("7d", 604_800)])
def test_ttl(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "12", "h", "-1h", "0s", "32d", "1w"])
def test_bad_ttl(text: str) -> None:
    with pytest.raises(ConfigError, match="--ttl"):
        parse_ttl(text)
