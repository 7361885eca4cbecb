"""``fairuse simulate --via http URL``: send the simulator's payloads to ``fairuse ingest``.

Payloads go as NDJSON batches to ``URL/v1/events``. A batch answered 503 or 429 (or lost to a
connection error: the service restarting) is sent again, unchanged, after ``Retry-After``: the
same event ids, so the ledger drops any copy the broker had already taken.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from fairuse.errors import BrokerError, ConfigError
from fairuse.recorder.simulator import Emission

RETRIED_STATUSES = {429, 502, 503, 504}


class _Pacer(Protocol):
    def delay(self, emission: Emission) -> float: ...


class _Progress(Protocol):
    def tick(self, emission: Emission) -> None: ...


@dataclass(slots=True)
class HttpTotals:
    """What the ingest service answered."""

    accepted: int = 0
    rejected: int = 0
    retries: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        """One summary line."""
        why = ", ".join(f"{reason} {n}" for reason, n in self.reasons.most_common())
        return (
            f"ingest: {self.accepted:,} accepted, {self.rejected:,} rejected"
            f"{f' ({why})' if why else ''}, {self.retries} retried requests"
        )


def events_url(url: str) -> str:
    """``URL`` itself if it names a path, else ``URL/v1/events``."""
    base = url.rstrip("/")
    return base if base.endswith("/v1/events") else f"{base}/v1/events"


async def send_over_http(
    emissions: Iterable[Emission],
    url: str,
    token: str | None,
    *,
    batch: int,
    pacer: _Pacer,
    progress: _Progress,
    retry_for_s: float,
) -> HttpTotals:
    """POST every payload in NDJSON batches of at most ``batch``; retry what was not stored."""
    totals = HttpTotals()
    headers = {"Content-Type": "application/x-ndjson"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    target = events_url(url)
    async with aiohttp.ClientSession(headers=headers) as session:
        pending: list[bytes] = []
        for emission in emissions:
            wait = pacer.delay(emission)
            if wait > 0.001:
                if pending:
                    await _post(session, target, pending, totals, retry_for_s)
                    pending = []
                await asyncio.sleep(wait)
            pending.append(emission.payload)
            progress.tick(emission)
            if len(pending) >= batch:
                await _post(session, target, pending, totals, retry_for_s)
                pending = []
        if pending:
            await _post(session, target, pending, totals, retry_for_s)
    return totals


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    payloads: list[bytes],
    totals: HttpTotals,
    retry_for_s: float,
) -> None:
    body = b"\n".join(payloads)
    deadline = time.monotonic() + retry_for_s
    backoff = 0.2
    while True:
        try:
            async with session.post(url, data=body) as response:
                answer = await response.json(content_type=None)
                status = response.status
                wait = float(response.headers.get("Retry-After", backoff))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            status, answer, wait = 0, {"detail": repr(exc)}, backoff
        if status in (202, 400, 403) and "results" in answer:
            for result in answer["results"]:
                if result["result"] == "accepted":
                    totals.accepted += 1
                else:
                    totals.rejected += 1
                    totals.reasons[result["reason"]] += 1
            return
        if status and status not in RETRIED_STATUSES:
            raise ConfigError(f"ingest at {url} answered {status}: {answer.get('detail')}")
        if time.monotonic() + wait > deadline:
            raise BrokerError(
                f"ingest at {url} did not take a batch within {retry_for_s:.0f} s: "
                f"{status or 'no answer'} {answer.get('detail')}"
            )
        totals.retries += 1
        await asyncio.sleep(wait)
        backoff = min(backoff * 2, 5.0)
