"""Telling the store how a job ended: one call per outcome, retried through blips.

A report is retried with a short back-off while the job's lease lasts (a store that blinks
for a moment must not turn a finished job into a recovered one). A report the store refuses
because another worker holds the lease now is counted under ``fenced``: that run's result
is discarded, as the fencing rules in `conveyor.backends.base` say.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from conveyor.job import Lease

if TYPE_CHECKING:
    from conveyor.backends.base import Backend
    from conveyor.worker.executor import Outcome
    from conveyor.worker.state import WorkerStats

log = logging.getLogger("conveyor.worker")


class Reporter:
    """Reports the ends of one worker's jobs to its store."""

    def __init__(self, backend: Backend, lease_seconds: float, counts: WorkerStats) -> None:
        self.backend = backend
        self.lease_seconds = lease_seconds
        self.counts = counts

    async def settle(self, lease: Lease, outcome: Outcome) -> bool:
        """Mark the job succeeded, or failed (to retry or dead), as ``outcome`` says."""
        failure = outcome.failure
        if failure is None:
            return await self._send(lease, lambda: self.backend.complete(lease, outcome.result))
        return await self._send(lease, lambda: self.backend.fail(lease, failure))

    async def release(self, lease: Lease) -> bool:
        """Give the job back to ready at once, its attempt unused (shutdown)."""
        return await self._send(lease, lambda: self.backend.release(lease))

    async def defer(self, lease: Lease, delay: float, headers: dict[str, Any] | None) -> bool:
        """Put the job back to wait ``delay`` seconds, its attempt unused (limits)."""
        return await self._send(lease, lambda: self.backend.defer(lease, delay, headers))

    async def _send(self, lease: Lease, call: Callable[[], Awaitable[bool]]) -> bool:
        deadline = time.monotonic() + self.lease_seconds
        delay = 0.05
        while True:
            try:
                ok = await call()
                break
            except Exception as exc:  # noqa: BLE001 - retried while the lease lasts
                if time.monotonic() + delay > deadline:
                    log.error("giving up reporting job %s: %s", lease.job_id, exc)
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        if not ok:
            self.counts.fenced += 1
            log.warning(
                "job %s: the result was rejected because this worker no longer holds its "
                "lease (another worker recovered it)",
                lease.job_id,
            )
        return ok
