"""Rule 2: how much one second of a session counts.

Audio counts ``channels`` x seconds (mono-equivalent); video counts
``max(1, width*height / (1920*1080))`` x seconds (1080p-equivalent), so 720p counts as 1.
"""

from __future__ import annotations

from fairuse.events import Media

FULL_HD_PIXELS = 1920 * 1080


def session_weight(media: Media, channels: int = 1, width: int = 1920, height: int = 1080) -> float:
    """The factor by which a session's raw milliseconds are multiplied."""
    if media == "audio":
        return float(channels)
    return max(1.0, (width * height) / FULL_HD_PIXELS)
