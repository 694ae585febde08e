"""What a worker keeps about itself: its counters and its running jobs."""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from conveyor.job import JobRecord, Lease


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


@dataclass(slots=True)
class WorkerStats:
    """Counters a worker keeps about itself."""

    processed: int = 0
    succeeded: int = 0
    retried: int = 0
    dead: int = 0
    fenced: int = 0
    lost: int = 0
    released: int = 0
    busy_seconds: float = 0.0
    #: Jobs put back to wait without using an attempt, by (task, reason): ``rate_limit``,
    #: ``concurrency``, ``retry_after`` (the task raised `RateLimited`) or ``unchecked``.
    waits: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: Seconds from ``run_at`` to claim, for the most recent jobs.
    pickup_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))


#: Called on the worker's loop when a job ends: the job, its outcome (``succeeded``,
#: ``retried``, ``dead``, ``released``, ``lost``, ``unreported`` or ``deferred``: put back to
#: wait by a limit or `RateLimited`) and seconds it ran.
JobObserver = Callable[[JobRecord, str, float], None]
