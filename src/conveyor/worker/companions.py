"""Tasks that run next to a `Worker` in the ``conveyor worker`` process.

* `report_metrics` logs the metrics line (`metrics.py`).
* `watch_parent` stops the worker when the process that started it (the supervisor of
  ``conveyor run``) is gone, so a killed supervisor leaves no worker behind. On Linux the
  supervisor also sets ``PR_SET_PDEATHSIG``; this check is the portable fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import TYPE_CHECKING

from conveyor.worker.metrics import report_metrics

if TYPE_CHECKING:
    from conveyor.worker.worker import Worker

PARENT_CHECK_INTERVAL = 0.5


async def watch_parent(worker: Worker, parent_pid: int) -> None:
    """Stop ``worker`` gracefully once our parent is no longer ``parent_pid``."""
    while True:
        if os.getppid() != parent_pid:
            break
        await asyncio.sleep(PARENT_CHECK_INTERVAL)
    if worker.stop_reason is None:
        worker.stop(f"the supervisor (pid {parent_pid}) is gone")


async def run_worker(
    worker: Worker, *, metrics_interval: float | None = None, parent_pid: int | None = None
) -> int:
    """Run ``worker`` with its companions; return its exit code."""
    companions: list[asyncio.Task[None]] = []
    if metrics_interval:
        companions.append(asyncio.create_task(report_metrics(worker, metrics_interval)))
    if parent_pid is not None:
        companions.append(asyncio.create_task(watch_parent(worker, parent_pid)))
    try:
        return await worker.run()
    finally:
        for task in companions:
            task.cancel()
        for task in companions:
            with contextlib.suppress(asyncio.CancelledError):
                await task
