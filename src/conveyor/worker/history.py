"""Throughput history: per-minute counts of finished attempts, kept in the backend.

Every ``conveyor worker`` counts the attempts it finishes per minute and queue (succeeded,
or failed whether or not a retry follows) and adds them to the store's per-minute table
(``store.telemetry.record_history``) every `FLUSH_SECONDS` and once more when it stops. The
store sums what every worker sends, so the history covers the whole fleet and survives restarts;
minutes older than ``HISTORY_HOURS`` are dropped as new ones arrive. A store without the
`Telemetry` capability keeps no history, so no recorder is attached (the worker says so).

A flush that fails keeps its counts for the next one and logs once per outage: history is
a chart, never a reason to stop a worker. Jobs released at shutdown or whose lease was lost
are not counted: another attempt will finish them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from conveyor.backends.capabilities import Telemetry
from conveyor.job import HistoryPoint, JobRecord

if TYPE_CHECKING:
    from conveyor.backends.base import Backend
    from conveyor.clock import Clock
    from conveyor.worker.worker import Worker

log = logging.getLogger("conveyor.history")

#: Seconds between flushes to the backend.
FLUSH_SECONDS = 5.0
#: The longest the last flush may take when the worker stops.
FINAL_FLUSH_TIMEOUT = 5.0

SUCCEEDED = frozenset({"succeeded"})
FAILED = frozenset({"retried", "dead"})

Key = tuple[int, str]  # (minute, queue)


class HistoryRecorder:
    """Counts finished attempts per (minute, queue) and adds them to the backend's history.

    `observe` is a `JobObserver` (append it to ``worker.job_observers``); `run` flushes
    every ``interval`` seconds until cancelled, then once more.
    """

    def __init__(
        self,
        backend: Backend,
        clock: Clock,
        *,
        keep_seconds: float,
        interval: float = FLUSH_SECONDS,
    ) -> None:
        self.backend = backend
        self.clock = clock
        self.keep_seconds = keep_seconds
        self.interval = interval
        #: Counts not yet in the backend: [succeeded, failed] per (minute, queue).
        self.pending: dict[Key, list[int]] = {}
        #: Flushes that failed since the last one that worked.
        self.failures = 0
        self._opened = False

    def observe(self, job: JobRecord, outcome: str, seconds: float) -> None:
        """Count one ended job (called on the worker's loop)."""
        if outcome in SUCCEEDED:
            column = 0
        elif outcome in FAILED:
            column = 1
        else:
            return  # released or lost: not a finished attempt
        minute = int(self.clock.now() // 60) * 60
        self.pending.setdefault((minute, job.queue), [0, 0])[column] += 1

    def points(self) -> list[HistoryPoint]:
        """The pending counts as history points, by minute then queue."""
        return [
            HistoryPoint(minute, queue, ok, bad)
            for (minute, queue), (ok, bad) in sorted(self.pending.items())
        ]

    async def flush(self) -> bool:
        """Send the pending counts; on failure keep them for the next flush. True when sent
        (or when there was nothing to send)."""
        if not self.pending:
            return True
        taken, self.pending = self.pending, {}
        points = [HistoryPoint(m, q, ok, bad) for (m, q), (ok, bad) in sorted(taken.items())]
        try:
            if not self._opened:
                await self.backend.open()
                self._opened = True
            await self.backend.telemetry.record_history(points, self.keep_seconds)
        except asyncio.CancelledError:
            self._keep(taken.items())  # the final flush sends them
            raise
        except Exception as exc:  # noqa: BLE001 - history must never stop the worker
            self._keep(taken.items())
            self.failures += 1
            if self.failures == 1:
                log.warning(
                    "could not record throughput history (%s: %s); keeping the counts and "
                    "retrying every %gs",
                    type(exc).__name__,
                    exc,
                    self.interval,
                )
            return False
        if self.failures:
            log.info("throughput history recorded again after %d failed tries", self.failures)
            self.failures = 0
        return True

    def _keep(self, items: Iterable[tuple[Key, list[int]]]) -> None:
        # Merge back what a failed flush took; minutes past the window would be dropped by
        # the backend anyway, so a long outage cannot grow this without bound.
        cutoff = self.clock.now() - self.keep_seconds
        for key, (ok, bad) in items:
            if key[0] >= cutoff:
                row = self.pending.setdefault(key, [0, 0])
                row[0] += ok
                row[1] += bad

    async def run(self) -> None:
        """Flush every ``interval`` seconds; when cancelled, flush once more and close."""
        try:
            while True:
                await asyncio.sleep(self.interval)
                await self.flush()
        finally:
            # Cancelled (the worker stopped): its last jobs have all been observed by now.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self.flush(), FINAL_FLUSH_TIMEOUT)
            if self.pending:
                log.warning(
                    "throughput history: %d job(s) could not be recorded at shutdown",
                    sum(ok + bad for ok, bad in self.pending.values()),
                )
            await self._close()

    async def _close(self) -> None:
        if self._opened:
            self._opened = False
            try:
                await self.backend.close()
            except Exception:
                log.debug("history backend close failed", exc_info=True)


def attach_history(worker: Worker) -> HistoryRecorder | None:
    """A recorder observing ``worker``'s jobs; ``None`` when ``HISTORY_HOURS`` is 0 or the
    store keeps no history."""
    hours = worker.app.settings.history_hours
    if hours <= 0 or not worker.app.backend.supports(Telemetry):
        return None
    recorder = HistoryRecorder(
        worker.app.backend.clone(), worker.app.clock, keep_seconds=hours * 3600
    )
    worker.job_observers.append(recorder.observe)
    return recorder
