"""Webhook delivery: one signed POST per attempt (Standard Webhooks headers, aiohttp)."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson

from fairuse.notify import signing


def body(kind: str, record: dict[str, Any], published_at: int) -> bytes:
    """The JSON body: ``{"type": kind, "timestamp": ISO time of publication, "data": record}``."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(published_at / 1000))
    return orjson.dumps(
        {"type": kind, "timestamp": f"{stamp}.{published_at % 1000:03d}Z", "data": record}
    )


async def post(
    session: aiohttp.ClientSession, url: str, key: bytes, msg_id: str, payload: bytes
) -> int:
    """POST ``payload`` signed now; the response's status code. Raises aiohttp.ClientError or
    TimeoutError when no response came."""
    headers = signing.headers(key, msg_id, int(time.time()), payload)
    async with session.post(url, data=payload, headers=headers, allow_redirects=False) as response:
        await response.read()
        return response.status
