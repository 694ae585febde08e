"""Running a `Scheduler` next to a worker in one process (``conveyor worker``'s built-in one)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Protocol

from conveyor.scheduler.scheduler import Scheduler

#: How often the scheduler looks whether the worker beside it began to stop.
WATCH_INTERVAL = 0.1


class Stoppable(Protocol):
    """What the scheduler watches: a worker's ``stop_reason`` (``None`` while running)."""

    stop_reason: str | None


async def run_beside(worker: Stoppable, scheduler: Scheduler) -> None:
    """Run ``scheduler`` until ``worker`` starts stopping (a signal, a limit) or cancellation.

    The scheduler stops as soon as the worker does (it does not wait for the worker's
    running jobs to drain) and gives up its lease, so another scheduler takes over.
    """
    task = asyncio.create_task(scheduler.run(), name="conveyor-scheduler")
    try:
        # The Worker offers no event to wait on (and is not ours to change), so look often.
        while worker.stop_reason is None and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(WATCH_INTERVAL)
    finally:
        scheduler.stop(worker.stop_reason or "the worker stopped")
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def with_scheduler(
    work: Awaitable[int], worker: Stoppable, scheduler: Scheduler | None
) -> int:
    """Await ``work`` (a worker's run) with ``scheduler`` beside it; returns its exit code."""
    if scheduler is None:
        return await work
    beside = asyncio.create_task(run_beside(worker, scheduler))
    try:
        return await work
    finally:
        if not beside.done():
            # The worker returned without stopping (e.g. it never connected): stop it here.
            scheduler.stop("the worker stopped")
        await asyncio.gather(beside, return_exceptions=True)
