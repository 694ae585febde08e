"""Settling a job: telling the store how it ended, and counting it, in one place.

`Reporter.settle` matches on the job's `Outcome` once: succeeded → ``complete``; failed →
``fail`` (a retry or dead, as the failure says); deferred → ``defer``; released →
``release``; lost or abandoned → nothing (the lease decides). A report is retried with a
short back-off while the job's lease lasts (a store that blinks for a moment must not turn
a finished job into a recovered one). A report the store refuses because another worker
holds the lease now is counted under ``fenced``: that run's result is discarded, as the
fencing rules in `conveyor.backends.base` say.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from conveyor.worker.outcome import (
    Abandoned,
    Deferred,
    Failed,
    Lost,
    Outcome,
    Released,
    Succeeded,
)

if TYPE_CHECKING:
    from conveyor.backends.base import Backend
    from conveyor.job import JobRecord, Lease
    from conveyor.worker.state import WorkerCounts

log = logging.getLogger("conveyor.worker")


class Reporter:
    """Settles the ends of one worker's jobs with its store, and counts them."""

    def __init__(self, backend: Backend, lease_seconds: float, counts: WorkerCounts) -> None:
        self.backend = backend
        self.lease_seconds = lease_seconds
        self.counts = counts

    async def settle(self, job: JobRecord, lease: Lease, outcome: Outcome) -> str:
        """Tell the store how ``job`` ended and count it; return the end's name.

        The name is what job observers see: ``succeeded``, ``retried``, ``dead``,
        ``deferred``, ``released``, ``lost``, ``abandoned``, or ``unreported`` for a
        release the store did not take.
        """
        backend, c = self.backend, self.counts
        match outcome:
            case Succeeded(result):
                await self._send(lease, lambda: backend.complete(lease, result))
                c.processed += 1
                c.succeeded += 1
                return "succeeded"
            case Failed(failure):
                await self._send(lease, lambda: backend.fail(lease, failure))
                c.processed += 1
                if outcome.retrying:
                    c.retried += 1
                    log.warning(
                        "job %s (%s) failed, will retry: %s", job.id, job.task, failure.error
                    )
                    return "retried"
                c.dead += 1
                log.error("job %s (%s) dead: %s", job.id, job.task, failure.error)
                return "dead"
            case Deferred(delay, reason, headers):
                if await self._send(lease, lambda: backend.defer(lease, delay, headers)):
                    c.waits[(job.task, reason)] += 1
                    log.debug("job %s (%s) waits %.3fs: %s", job.id, job.task, delay, reason)
                return "deferred"
            case Released():
                if await self._send(lease, lambda: backend.release(lease)):
                    c.released += 1
                    return "released"
                return "unreported"
            case Lost():
                c.lost += 1
                log.warning("job %s (%s) lost its lease and was cancelled", job.id, job.task)
                return "lost"
            case Abandoned():
                c.abandoned += 1
                log.warning(
                    "job %s (%s) still runs in its thread at the end of the grace period: it "
                    "is not released (it would run twice) but left to its lease, which "
                    "expires after this process exits",
                    job.id,
                    job.task,
                )
                return "abandoned"

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
