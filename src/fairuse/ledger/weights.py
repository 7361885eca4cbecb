"""Rule 2: how much one second of a session counts.

Audio counts ``channels`` (1-8) x seconds (mono-equivalent) with ``channel_weighting =
"per_channel"``, or 1 x seconds with ``"flat"``; video counts ``max(1, width*height /
(1920*1080))`` x seconds (1080p-equivalent), so 720p counts as 1.
"""

from __future__ import annotations

from fairuse.events import Media

FULL_HD_PIXELS = 1920 * 1080


def session_weight(
    media: Media, channels: int = 1, width: int = 1920, height: int = 1080, *, flat: bool = False
) -> float:
    """The factor by which a session's raw milliseconds are multiplied (``flat``: audio counts
    as mono whatever its channels)."""
    if media == "audio":
        return 1.0 if flat else float(channels)
    return max(1.0, (width * height) / FULL_HD_PIXELS)
