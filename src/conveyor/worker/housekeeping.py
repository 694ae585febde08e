"""The worker's housekeeping loop: the reaper's passes, and recycling the worker.

About once a second it runs the reaper when its interval is due (`reaper.py`), and stops
the worker once it has run for ``max_time`` or its memory passed ``memory_limit`` (exit 0:
a supervisor starts a fresh one). ``max_jobs`` is counted where jobs end, not here.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from conveyor.worker.reaper import Reaper

if TYPE_CHECKING:
    from conveyor.backends.base import Backend
    from conveyor.worker.worker import Worker


async def housekeeping(worker: Worker, backend: Backend) -> None:
    """Run until the worker is closing (or this task is cancelled)."""
    s = worker.app.settings
    reaper = Reaper(
        backend,
        worker.app.clock,
        max_recoveries=s.max_recoveries,
        result_ttl=s.result_ttl,
        dead_ttl=s.dead_ttl,
    )
    next_reap = 0.0
    while not worker.closing:
        now = time.monotonic()
        if worker.reaper_enabled and now >= next_reap:
            next_reap = now + worker.reaper_interval
            await reaper.tick()
        if worker.max_time is not None and now - worker.started_monotonic >= worker.max_time:
            worker.stop(f"max time reached ({worker.max_time:g}s)")
        if worker.memory_limit is not None:
            rss = worker.rss_bytes() / 2**20
            if rss > worker.memory_limit:
                worker.stop(f"memory limit reached ({rss:.0f} MB > {worker.memory_limit} MB)")
        await asyncio.sleep(min(1.0, worker.reaper_interval))
