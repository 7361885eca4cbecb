"""Webhook signatures verify with the standardwebhooks reference package; the retry schedule."""

from __future__ import annotations

import base64
import random
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from fairuse.notify import signing, webhook
from fairuse.notify.retry import gives_up, next_delay_s
from fairuse.settings import NotifySettings

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@given(st.text(min_size=1, max_size=40), st.binary(max_size=300))
def test_signatures_verify_with_the_reference_verifier(msg_id: str, data: bytes) -> None:
    body = webhook.body("violation.exceeded", {"id": msg_id, "data": data.hex()}, 1_793_577_600_123)
    now = int(time.time())
    headers = signing.headers(signing.secret_key(SECRET), msg_id.replace(" ", "_"), now, body)
    assert Webhook(SECRET).verify(body, headers)["data"]["id"] == msg_id


def test_a_tampered_body_or_another_secret_fails_verification() -> None:
    body = webhook.body("enforcement.notice", {"x": 1}, 0)
    headers = signing.headers(signing.secret_key(SECRET), "id1", int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace(b"1", b"2"), headers)
    other = "whsec_" + base64.b64encode(b"another secret of 32 bytes......").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)


def test_secrets_must_be_whsec_base64_of_enough_bytes() -> None:
    for bad in ("abc", "whsec_!!!", "whsec_" + base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError):
            signing.secret_key(bad)


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    settings = NotifySettings(retry_initial_s=10, retry_max_delay_s=100, retry_jitter=0.2)
    rng = random.Random(7)
    for attempts, base in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (12, 100)]:
        delays = [next_delay_s(settings, attempts, rng) for _ in range(200)]
        assert all(0.8 * base <= d <= 1.2 * base for d in delays)
        assert max(delays) - min(delays) > 0.1 * base  # jitter spreads the retries


def test_the_default_schedule_retries_for_a_day_then_gives_up() -> None:
    settings = NotifySettings()
    rng = random.Random(1)
    first = elapsed = 0
    attempts = 1
    while True:
        retry_at = elapsed + int(next_delay_s(settings, attempts, rng) * 1000)
        if gives_up(settings, first, retry_at):
            break
        elapsed, attempts = retry_at, attempts + 1
    assert 20 * 3_600_000 < elapsed <= 24 * 3_600_000
    assert 20 < attempts < 40
