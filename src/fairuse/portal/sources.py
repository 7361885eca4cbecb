"""Where the portal's numbers come from: the worker's ``/v1`` API (live state) and the
warehouse (history), read through the existing query layer."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import orjson

from fairuse.errors import FairUseError
from fairuse.warehouse.client import is_embedded
from fairuse.warehouse.reports import Query
from fairuse.warehouse.store import Reader

DECISION_METRICS = ("audio_hours", "video_hours", "api_calls", "stored_calls_per_user")


class WorkerUnavailable(FairUseError):
    """The worker's API did not answer, or answered with an error."""


class WorkerApi:
    """Reads one tenant's live state from the worker's HTTP API with the portal's token."""

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, token: str | None, timeout_s: float
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def _get(self, path: str, params: dict[str, str] | None = None) -> tuple[int, Any]:
        try:
            async with self._session.get(
                self._base + path, params=params, headers=self._headers, timeout=self._timeout
            ) as response:
                status, raw = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WorkerUnavailable(f"the worker at {self._base} did not answer: {exc}") from exc
        try:
            return status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return status, None  # e.g. aiohttp's plain "404: Not Found" of an unknown route

    async def _tenant(self, tenant: str, what: str, params: dict[str, str] | None = None) -> Any:
        status, body = await self._get(f"/v1/tenants/{tenant}/{what}", params)
        if status == 404 and not (isinstance(body, dict) and "error" in body):
            # A worker from before /v1: the unversioned aliases answer the same JSON.
            status, body = await self._get(f"/tenants/{tenant}/{what}", params)
        if status == 404:
            return None
        if status != 200:
            raise WorkerUnavailable(f"the worker answered {status} to {what} of {tenant}")
        return body

    async def usage(self, tenant: str) -> dict[str, Any] | None:
        """``/v1/tenants/{tenant}/usage``, or None for a tenant the worker has never seen."""
        return await self._tenant(tenant, "usage")

    async def violations(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's recent violations (oldest first)."""
        body = await self._tenant(tenant, "violations")
        return list(body["violations"]) if body else []

    async def decisions(self, tenant: str) -> dict[str, dict[str, Any]]:
        """``/v1/tenants/{tenant}/decision?metric=M`` for each metric that answers."""
        answers = await asyncio.gather(
            *(self._decision(tenant, metric) for metric in DECISION_METRICS)
        )
        return {m: a for m, a in zip(DECISION_METRICS, answers, strict=True) if a is not None}

    async def _decision(self, tenant: str, metric: str) -> dict[str, Any] | None:
        status, body = await self._get(f"/v1/tenants/{tenant}/decision", {"metric": metric})
        return body if status == 200 and isinstance(body, dict) else None


class Warehouse:
    """Runs report queries off the event loop, one at a time (the embedded engine is shared).

    The connection stays open while it goes to a server or through the embedded store's owner
    (the running sink); a store this process had to open itself is released after each visit,
    so a sink can start and take it.
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._reader: Reader | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="portal-warehouse")

    async def rows(self, *queries: Query) -> list[list[dict[str, Any]]]:
        """The rows (as dicts) of each query, read in one visit to the store."""
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._read, list(queries)
        )

    def _read(self, queries: list[Query]) -> list[list[dict[str, Any]]]:
        reader = self._reader or Reader(self.dsn)
        self._reader = None
        try:
            rows = [reader.query(sql, params).dicts() for sql, params in queries]
        except BaseException:
            reader.close()  # the next visit looks for the store (or its owner) again
            raise
        if is_embedded(self.dsn) and reader.via_owner is None:
            reader.close()
        else:
            self._reader = reader
        return rows

    def close(self) -> None:
        """Release the store and stop the reading thread."""
        self._pool.shutdown(wait=True)
        if self._reader is not None:
            self._reader.close()
