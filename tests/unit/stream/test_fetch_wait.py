"""The worker's consumer holds a fetch open no longer than configured (Faust fixes 1,500 ms).

aiokafka keeps one fetch in flight per broker, leaving out partitions with buffered records: a
fetch of idle partitions held open for Faust's 1,500 ms made the busy ones arrive in bursts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fairuse.policy import DEFAULT_POLICY
from fairuse.settings import load_settings
from fairuse.stream.app import create_worker


def _fetch_wait_ms(env: dict[str, str]) -> int:
    """The fetch wait of the consumer the worker's consumer thread makes (inside a running
    loop, as aiokafka requires)."""

    async def made() -> int:
        worker = create_worker(load_settings(env), DEFAULT_POLICY)
        consumer = worker.app.consumer._thread._create_worker_consumer(worker.app.transport)
        return consumer._fetch_max_wait_ms

    return asyncio.run(made())


def test_the_consumer_holds_a_fetch_open_at_most_the_configured_wait(tmp_path: Path) -> None:
    env = {"FAIRUSE_DATA_DIR": str(tmp_path), "FAIRUSE_WORKER_FETCH_MAX_WAIT_MS": "40"}
    assert _fetch_wait_ms(env) == 40


def test_by_default_100_ms_far_below_faust_s_fixed_wait(tmp_path: Path) -> None:
    assert _fetch_wait_ms({"FAIRUSE_DATA_DIR": str(tmp_path)}) == 100
