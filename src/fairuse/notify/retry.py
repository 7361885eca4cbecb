"""The retry schedule: exponential backoff with jitter, bounded by a maximum age (pure)."""

from __future__ import annotations

import random

from fairuse.settings import NotifySettings


def next_delay_s(
    settings: NotifySettings, attempts: int, rng: random.Random | None = None
) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: ``initial x 2^(attempts-1)``,
    capped at ``max_delay``, times a random factor in ``[1 - jitter, 1 + jitter]``."""
    base = min(settings.retry_max_delay_s, settings.retry_initial_s * 2 ** max(0, attempts - 1))
    factor = 1 + settings.retry_jitter * (2 * (rng or random).random() - 1)
    return base * factor


def gives_up(settings: NotifySettings, first_attempt_ms: int, retry_at_ms: int) -> bool:
    """Whether a retry at ``retry_at_ms`` would come later than the maximum age allows (the
    delivery is then dead-lettered after its last attempt)."""
    return retry_at_ms - first_attempt_ms > settings.retry_max_age_s * 1000
