"""Progress a running job reports (``current_job().progress``), written to the store.

A task may report as often as it likes; the store sees at most one write a second per job.
Each job gets a `JobReports` (its `report` is the sink `JobContext` calls): the first
report is written at once, later ones replace a pending value that is written when the
second is up, and the last one still pending is written once more just before the job is
settled (`JobReports.flush`), so a finished job shows its final report.

A report never blocks the task and never raises into it: a plain ``def`` task's thread
hands the values to the worker's loop (``call_soon_threadsafe``), the write runs as its own
asyncio task, and a store error is logged once per job (warning, with the job id). Writes
go through the worker's own store connection, never the heartbeat's, so a slow store does
not hold back lease renewals. A job that never reports costs one small object and nothing
else: no timer, no task, no store call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.backends.capabilities import Progress
    from conveyor.job import Lease

log = logging.getLogger("conveyor.worker")

#: Seconds between two writes of one job's progress.
INTERVAL = 1.0
#: Longest a job's settle waits for its last progress write (a store that hangs must not
#: hold the job's result back for long; the result is what matters).
FLUSH_WAIT = 5.0

Values = tuple[float, float | None, str | None]


class ProgressWriter:
    """One worker's (or eager run's) progress writes: hands out a `JobReports` per job.

    ``progress`` is the store's `Progress`, or ``None`` for a store that keeps none (the
    reports are then checked by `JobContext.progress` and dropped: `for_job` gives no sink).
    Made on the event loop that runs the jobs.
    """

    def __init__(self, progress: Progress | None, *, interval: float = INTERVAL) -> None:
        self.progress = progress
        self.interval = interval
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()

    def for_job(self, lease: Lease) -> JobReports | None:
        """The reports of the job held by ``lease``; ``None`` on a store without progress."""
        if self.progress is None:
            return None
        return JobReports(self, self.progress, lease)


class JobReports:
    """One running job's progress: the latest report, written at most once an interval."""

    __slots__ = (
        "_closed",
        "_last",
        "_pending",
        "_progress",
        "_timer",
        "_warned",
        "_write",
        "lease",
        "w",
    )

    def __init__(self, writer: ProgressWriter, progress: Progress, lease: Lease) -> None:
        self.w = writer
        self._progress = progress
        self.lease = lease
        self._pending: Values | None = None
        self._last: float | None = None  # loop time the last write started
        self._write: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._warned = False

    @property
    def unsent(self) -> bool:
        """Whether a report is waiting to be written or being written."""
        return self._pending is not None or self._write is not None

    def report(self, done: float, total: float | None, note: str | None) -> None:
        """The sink `JobContext.progress` calls (checked values), from any thread."""
        values = (done, total, note)
        if threading.get_ident() == self.w.thread:
            self._offer(values)
            return
        # A closed loop (RuntimeError): the worker is gone, and so is the job.
        with contextlib.suppress(RuntimeError):
            self.w.loop.call_soon_threadsafe(self._offer, values)

    def _offer(self, values: Values) -> None:
        if self._closed:
            return  # settled already (a timed-out thread still reporting): nothing to do
        self._pending = values
        if self._write is None and self._timer is None:
            self._schedule()

    def _schedule(self) -> None:
        loop = self.w.loop
        wait = 0.0 if self._last is None else self._last + self.w.interval - loop.time()
        if wait <= 0:
            self._start_write()
        else:
            self._timer = loop.call_later(wait, self._due)

    def _due(self) -> None:
        self._timer = None
        if not self._closed and self._pending is not None and self._write is None:
            self._start_write()

    def _start_write(self) -> asyncio.Task[None]:
        values, self._pending = self._pending, None
        assert values is not None
        self._last = self.w.loop.time()
        write = self._write = self.w.loop.create_task(self._send(values))
        write.add_done_callback(self._written)
        return write

    def _written(self, _: asyncio.Task[None]) -> None:
        self._write = None
        if not self._closed and self._pending is not None and self._timer is None:
            self._schedule()

    async def _send(self, values: Values) -> None:
        try:
            kept = await self._progress.report_progress(self.lease, *values)
        except Exception as exc:  # noqa: BLE001 - a report must never fail its job
            if not self._warned:
                self._warned = True
                log.warning(
                    "job %s: its progress report could not be written (%s: %s); the job "
                    "goes on, later reports are tried again",
                    self.lease.job_id,
                    type(exc).__name__,
                    exc,
                )
            return
        if not kept:
            log.debug("job %s: progress not kept (lease not current)", self.lease.job_id)

    async def flush(self) -> None:
        """Write the report still pending, before the job is settled (at most `FLUSH_WAIT`).

        No report is taken after this: the job's result is what comes next.
        """
        self._stop()
        deadline = self.w.loop.time() + FLUSH_WAIT
        write = self._write
        if write is not None:
            await asyncio.wait({write}, timeout=FLUSH_WAIT)
            if not write.done():
                return  # the store hangs: leave that write to end on its own
        if self._pending is not None:
            left = max(0.0, deadline - self.w.loop.time())
            await asyncio.wait({self._start_write()}, timeout=left)

    def close(self) -> None:
        """Take no more reports and drop the one pending (the job ended or was given up)."""
        self._stop()
        self._pending = None

    def _stop(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
