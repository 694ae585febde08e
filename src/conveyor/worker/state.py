"""What a worker keeps about itself: its counters and its running jobs.

The counters here change as jobs end; `conveyor.worker.stats.WorkerStats` is the frozen
snapshot read from them (`Worker.stats`).
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from conveyor.job import JobRecord, Lease
from conveyor.worker.outcome import Abandoned, Lost, Released
from conveyor.worker.progress import JobReports

P = ParamSpec("P")
T = TypeVar("T")

#: A worker's exit codes (docs/workers.md). 0: it stopped as asked or recycled itself
#: (max jobs, memory, max time, burst done); the others ask a supervisor to restart it.
EXIT_OK = 0
#: A worker that recycled itself (max jobs, memory limit, max time) exits with this: 0, which
#: supervisord, systemd, Docker and Kubernetes all count as success; `conveyor export` files
#: restart it at once, never as a failure (docs/deployment.md).
EXIT_RECYCLED = EXIT_OK
#: A second stop signal: running jobs were released at once.
EXIT_FORCED = 1
#: A plain ``def`` task overran its timeout; its thread cannot be stopped, so the process
#: ends to free it.
EXIT_STUCK_THREAD = 3
#: An ``async def`` task blocked the event loop past its timeout plus the loop grace, or
#: past the shutdown grace after a stop signal (`conveyor.worker.watchdog`).
EXIT_LOOP_BLOCKED = 4


class JobThreads(Executor):
    """The worker's thread pool as one job sees it: remembers the thread work it was given.

    A plain ``def`` task's thread cannot be stopped, so the worker must know whether a job's
    code still runs after its asyncio Task ended (a timeout, the end of the grace period).
    """

    def __init__(self, pool: Executor) -> None:
        self.pool = pool
        self.future: Future[Any] | None = None

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future = self.pool.submit(fn, *args, **kwargs)
        self.future = future
        return future

    @property
    def busy(self) -> bool:
        """Whether the job's code is still running in a thread."""
        return self.future is not None and not self.future.done()


@dataclass(slots=True)
class Running:
    """One job this worker runs now."""

    job: JobRecord
    lease: Lease
    task: asyncio.Task[None]
    started: float
    cancel_reason: str | None = None
    #: False once the job has run and only its report is left (it is then not cancelled).
    executing: bool = True
    #: The concurrency slot the job holds (released when it ends).
    slot: str | None = None
    #: The thread work of a plain ``def`` task (see `JobThreads`).
    threads: JobThreads | None = None
    #: The progress the job reports (``None`` on a store that keeps none).
    reports: JobReports | None = None

    def cancelled(self) -> Released | Lost | Abandoned:
        """How the job ends once the worker cancelled it: its lease was lost, or the
        worker stops."""
        if self.cancel_reason == "lost":
            return Lost()
        if self.threads is not None and self.threads.busy:
            # A plain def task's thread cannot be stopped: releasing its job would let
            # another worker run it while this thread still does.
            return Abandoned()
        return Released()


@dataclass(slots=True)
class WorkerCounts:
    """Counters a worker keeps about itself, updated on its loop as jobs end."""

    processed: int = 0
    succeeded: int = 0
    retried: int = 0
    dead: int = 0
    fenced: int = 0
    lost: int = 0
    released: int = 0
    #: Jobs whose thread still ran when the worker stopped: left to expire, not released.
    abandoned: int = 0
    busy_seconds: float = 0.0
    #: Jobs put back to wait without using an attempt, by (task, reason): ``rate_limit``,
    #: ``concurrency``, ``retry_after`` (the task raised `RateLimited`) or ``unchecked``.
    waits: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: Seconds from ``run_at`` to claim, for the most recent jobs.
    pickup_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))


#: Called on the worker's loop when a job ends: the job, its outcome (``succeeded``,
#: ``retried``, ``dead``, ``released``, ``lost``, ``unreported``, ``abandoned`` (its thread
#: still ran at shutdown) or ``deferred``: put back to wait by a limit or `RateLimited`) and
#: seconds it ran.
JobObserver = Callable[[JobRecord, str, float], None]
