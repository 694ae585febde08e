"""`drain`: a real worker runs the queues until no job it serves is ready."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from conveyor.app import Conveyor
from conveyor.backends.base import Backend
from conveyor.clock import FakeClock
from conveyor.errors import JobFailed
from conveyor.job import JobQuery, JobRecord, Routing, State
from conveyor.testing.eager import in_thread
from conveyor.worker.worker import Worker

#: Enough for any test's jobs; `drain` compares the store before and after.
_SNAPSHOT_LIMIT = 10_000_000


# -- drain ---------------------------------------------------------------------------------
@dataclass(slots=True, repr=False)
class DrainReport:
    """What one `drain` ran.

    ``succeeded`` and ``dead`` hold the jobs that reached those states while draining, in
    the order they finished (then enqueue order); ``retried`` counts failed runs that were
    scheduled again and ``processed`` every run.
    """

    succeeded: list[JobRecord] = field(default_factory=list)
    dead: list[JobRecord] = field(default_factory=list)
    retried: int = 0
    processed: int = 0

    def __repr__(self) -> str:
        return (
            f"<DrainReport processed={self.processed} succeeded={len(self.succeeded)} "
            f"dead={len(self.dead)} retried={self.retried}>"
        )

    @property
    def ok(self) -> bool:
        """Whether no job was dead-lettered."""
        return not self.dead

    def raise_on_failure(self) -> None:
        """Raise `JobFailed` naming every dead-lettered job and its error."""
        if not self.dead:
            return
        lines = [f"  {j.id} {j.task}: {j.last_error}" for j in self.dead]
        raise JobFailed(
            f"{len(self.dead)} job(s) were dead-lettered while draining:\n" + "\n".join(lines),
            self.dead[0],
        )


def drain(
    app: Conveyor,
    *,
    queues: Sequence[str] | None = None,
    max_jobs: int | None = None,
    timeout: float = 10.0,
    include_scheduled: bool = True,
    concurrency: int | None = None,
) -> DrainReport:
    """Run a real worker until no job it serves is ready (from sync code).

    See `drain_async`. Safe to call inside a running event loop: the worker then runs on a
    private loop in a helper thread.
    """
    return in_thread(
        lambda: drain_async(
            app,
            queues=queues,
            max_jobs=max_jobs,
            timeout=timeout,
            include_scheduled=include_scheduled,
            concurrency=concurrency,
        )
    )


async def drain_async(
    app: Conveyor,
    *,
    queues: Sequence[str] | None = None,
    max_jobs: int | None = None,
    timeout: float = 10.0,
    include_scheduled: bool = True,
    concurrency: int | None = None,
) -> DrainReport:
    """Run a real `Worker` (in burst mode) until no job it serves is ready or running.

    ``queues`` (names or globs) limits the lanes; every queue by default. With
    ``include_scheduled`` delayed jobs and retries run too: on a `FakeClock` the clock jumps
    to the next due job at once, on a real clock the drain waits for jobs due before its
    ``timeout``. ``max_jobs`` stops after that many runs. Raises `TimeoutError` if jobs
    are still running or ready after ``timeout`` seconds (a task that never ends, or one
    that keeps enqueueing more work).
    """
    deadline = time.monotonic() + timeout
    backend = await app.open()
    routing = Routing(queues=tuple(queues) if queues else None)
    before = {j.id: j.state for j in await _snapshot(backend)}
    report = DrainReport()
    while True:
        # Options that would make a worker stop early (WORKER_MAX_TIME, ...) are not
        # wanted here, and routing comes from the arguments, never from WORKER_* settings.
        worker = Worker(app, burst=True, concurrency=concurrency, reaper=False)
        worker.routing = routing
        worker.max_jobs = None if max_jobs is None else max_jobs - report.processed
        worker.max_time = worker.memory_limit = None
        await _run_worker(worker, deadline, timeout)
        report.processed += worker.counts.processed
        report.retried += worker.counts.retried
        if max_jobs is not None and report.processed >= max_jobs:
            break
        if await _has_ready(backend, routing):
            continue  # the worker stopped itself early (a stuck sync thread)
        if not include_scheduled or not await _next_due(app, backend, routing, deadline):
            break
    for job in reversed(await _snapshot(backend)):  # oldest first
        if before.get(job.id) is not job.state and job.state is State.SUCCEEDED:
            report.succeeded.append(job)
        elif before.get(job.id) is not job.state and job.state is State.DEAD:
            report.dead.append(job)
    report.succeeded.sort(key=_finish_order)
    report.dead.sort(key=_finish_order)
    return report


async def _run_worker(worker: Worker, deadline: float, timeout: float) -> None:
    run = asyncio.ensure_future(worker.run())
    done, _ = await asyncio.wait({run}, timeout=max(0.0, deadline - time.monotonic()))
    if not done:
        worker.force_stop()
        await run
        raise TimeoutError(
            f"drain did not finish within {timeout:g}s: jobs were still running or ready "
            f"({worker.counts.processed} run by the last worker); a task may never end, or "
            "keep enqueueing more work. Raise timeout= or pass max_jobs="
        )
    run.result()


async def _snapshot(backend: Backend) -> list[JobRecord]:
    return await backend.admin.query(JobQuery(limit=_SNAPSHOT_LIMIT))


async def _has_ready(backend: Backend, routing: Routing) -> bool:
    ready = await backend.admin.query(JobQuery(states=(State.READY,), limit=_SNAPSHOT_LIMIT))
    return any(routing.matches(j.queue, j.priority, j.task) for j in ready)


async def _next_due(app: Conveyor, backend: Backend, routing: Routing, deadline: float) -> bool:
    """Make the next scheduled job due, if one is due in time; whether there was one.

    On a `FakeClock` the clock jumps to it. On a real clock this waits for it, if it comes
    before ``deadline``.
    """
    scheduled = await backend.admin.query(
        JobQuery(states=(State.SCHEDULED,), limit=_SNAPSHOT_LIMIT)
    )
    due = [j.run_at for j in scheduled if routing.matches(j.queue, j.priority, j.task)]
    if not due:
        return False
    wait = min(due) - app.clock.now()
    if wait <= 0:
        return True
    if isinstance(app.clock, FakeClock):
        app.clock.advance(wait)
        return True
    if time.monotonic() + wait > deadline:
        return False
    await asyncio.sleep(wait)
    return True


def _finish_order(job: JobRecord) -> float:
    # A stable sort: jobs that finished at the same instant (a FakeClock) keep enqueue order.
    return job.finished_at or 0.0
