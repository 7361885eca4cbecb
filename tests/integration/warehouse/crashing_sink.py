"""A sink process that dies right after its first flush's inserts, before their commit.

The exactly-once test's crash, through the sink's fault-injection seam (``after_insert``);
production code has no such switch. ``python crashing_sink.py GROUP`` with the usual
``FAIRUSE_*`` environment.
"""

from __future__ import annotations

import asyncio
import os
import sys

from fairuse.settings import load_settings
from fairuse.warehouse.batching import PartitionBatch
from fairuse.warehouse.sink import run_sink

CRASH_EXIT_CODE = 70


def crash(batches: list[PartitionBatch]) -> None:
    """Exit at once, as a killed process would: no flush, no commit, no cleanup."""
    print(f"crashing after inserting {len(batches)} batches, before the commit", flush=True)
    os._exit(CRASH_EXIT_CODE)


if __name__ == "__main__":
    asyncio.run(
        run_sink(load_settings(), asyncio.Event(), group_id=sys.argv[1], after_insert=crash)
    )
