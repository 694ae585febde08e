"""Middleware: onion layers around running a job and around enqueueing jobs.

```python
@app.middleware
async def db_session(ctx: ExecutionContext, call_next: JobNext) -> Any:
    async with Session() as session:
        ctx.state["db"] = session
        return await call_next()
```

Order, outermost first, for a job run: the executor's guard (any exception, even
``SystemExit``, becomes a failed job) → the built-ins `trace_job`, `sentry_job` (a
pass-through unless a Sentry SDK is active), `log_job`, `measure_job` → app middleware in
registration order → the task's own ``middleware=[...]`` → the timeout → the task. For an
enqueue: `trace_enqueue`, `sentry_enqueue` → app enqueue middleware in registration order
→ storing. The built-ins sit in ``app.middlewares.job`` and ``app.middlewares.enqueue`` and
can be removed from there. See ``docs/middleware.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conveyor.middleware.chain import (
    EnqueueContext,
    EnqueueMiddleware,
    EnqueueNext,
    ExecutionContext,
    JobMiddleware,
    JobNext,
    run_chain,
    run_chain_sync,
)
from conveyor.middleware.joblog import log_job
from conveyor.middleware.metrics import JobMetrics, measure_job
from conveyor.middleware.sentry import sentry_enqueue, sentry_job
from conveyor.middleware.tracing import (
    CorrelationIdFilter,
    correlation_id,
    correlation_scope,
    trace_enqueue,
    trace_job,
)

__all__ = [
    "CorrelationIdFilter",
    "EnqueueContext",
    "EnqueueMiddleware",
    "EnqueueNext",
    "ExecutionContext",
    "JobMetrics",
    "JobMiddleware",
    "JobNext",
    "MiddlewareStack",
    "correlation_id",
    "correlation_scope",
    "log_job",
    "measure_job",
    "run_chain",
    "run_chain_sync",
    "sentry_enqueue",
    "sentry_job",
    "trace_enqueue",
    "trace_job",
]


def _default_job() -> list[JobMiddleware]:
    # sentry_job outside log_job: the job's own lines are breadcrumbs of its scope.
    return [trace_job, sentry_job, log_job, measure_job]


def _default_enqueue() -> list[EnqueueMiddleware]:
    return [trace_enqueue, sentry_enqueue]


@dataclass(slots=True)
class MiddlewareStack:
    """An app's middleware lists, outermost first, built-ins included."""

    job: list[JobMiddleware] = field(default_factory=_default_job)
    enqueue: list[EnqueueMiddleware] = field(default_factory=_default_enqueue)
