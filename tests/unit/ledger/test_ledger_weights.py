from __future__ import annotations

import pytest

from fairuse.ledger.weights import session_weight


@pytest.mark.parametrize(
    ("media", "channels", "width", "height", "weight"),
    [
        ("audio", 1, 1920, 1080, 1.0),
        ("audio", 2, 1920, 1080, 2.0),  # stereo counts twice
        ("video", 1, 1920, 1080, 1.0),
        ("video", 1, 1280, 720, 1.0),  # below 1080p counts as 1080p
        ("video", 1, 3840, 2160, 4.0),  # 4K = four 1080p screens
        ("video", 1, 2560, 1440, 2560 * 1440 / (1920 * 1080)),
    ],
)
def test_session_weight(media, channels, width, height, weight) -> None:
    assert session_weight(media, channels, width, height) == weight


def test_1440p_weight_is_sixteen_ninths() -> None:
    assert session_weight("video", 1, 2560, 1440) == pytest.approx(16 / 9, rel=1e-15)
