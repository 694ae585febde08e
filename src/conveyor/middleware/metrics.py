"""Metrics: in-process counts and duration sums per task, queue and outcome.

The registry lives on the app (``app.job_metrics``); a worker shows it in ``stats()``
under ``"tasks"``, for the metrics line and Prometheus to read.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.errors import RateLimited

if TYPE_CHECKING:
    from conveyor.middleware.chain import ExecutionContext, JobNext


@dataclass(slots=True)
class _Series:
    count: int = 0
    seconds: float = 0.0


class JobMetrics:
    """Counters and duration sums of job runs, keyed by (task, queue, outcome).

    ``outcome`` is ``succeeded``, ``failed`` (whether the run raised, retry or not) or
    ``rate_limited`` (the task raised `RateLimited`).
    Safe to read from another thread.
    """

    def __init__(self) -> None:
        self._series: dict[tuple[str, str, str], _Series] = {}
        self._lock = threading.Lock()

    def observe(self, task: str, queue: str, outcome: str, seconds: float) -> None:
        """Count one run that took ``seconds``."""
        key = (task, queue, outcome)
        with self._lock:
            series = self._series.get(key)
            if series is None:  # not setdefault: that would make a _Series for every run
                series = self._series[key] = _Series()
            series.count += 1
            series.seconds += seconds

    def count(self, task: str, queue: str | None = None, outcome: str | None = None) -> int:
        """How many runs of ``task`` (optionally only in ``queue`` / with ``outcome``)."""
        with self._lock:
            return sum(
                s.count
                for (t, q, o), s in self._series.items()
                if t == task and queue in (None, q) and outcome in (None, o)
            )

    def snapshot(self) -> list[dict[str, Any]]:
        """Every series as ``{task, queue, outcome, count, seconds}``, sorted."""
        with self._lock:
            items = sorted(self._series.items())
            return [
                {
                    "task": t,
                    "queue": q,
                    "outcome": o,
                    "count": s.count,
                    "seconds": round(s.seconds, 6),
                }
                for (t, q, o), s in items
            ]

    def reset(self) -> None:
        """Forget every series."""
        with self._lock:
            self._series.clear()


async def measure_job(ctx: ExecutionContext, call_next: JobNext) -> Any:
    """Record the run's outcome and duration in ``ctx.app.job_metrics``."""
    start = time.perf_counter()
    outcome = "failed"
    try:
        value = await call_next()
        outcome = "succeeded"
        return value
    except RateLimited:
        outcome = "rate_limited"  # waits without using an attempt: not a failure
        raise
    finally:
        ctx.app.job_metrics.observe(ctx.task.name, ctx.queue, outcome, time.perf_counter() - start)
