"""Logging: a start line and a finish line (with its duration) for every job run.

Lines go to the ``conveyor.job`` logger with the fields ``job_id``, ``task``, ``queue``,
``attempt``, ``correlation_id`` (and ``duration``, ``outcome`` on the finish line) as
record attributes, for formatters that print them.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from conveyor.errors import RateLimited
from conveyor.middleware.tracing import correlation_id

if TYPE_CHECKING:
    from conveyor.middleware.chain import ExecutionContext, JobNext

log = logging.getLogger("conveyor.job")


async def log_job(ctx: ExecutionContext, call_next: JobNext) -> Any:
    """Log ``job ... started`` before the task and ``... succeeded|failed|rate limited in
    Ns`` after."""
    if not log.isEnabledFor(logging.INFO):
        return await call_next()  # nothing would be printed: skip building the lines
    fields: dict[str, Any] = {
        "job_id": ctx.job.id,
        "task": ctx.task.name,
        "queue": ctx.queue,
        "attempt": ctx.attempt,
        "correlation_id": correlation_id() or "-",
    }
    head = f"job {ctx.job.id} {ctx.task.name} (attempt {ctx.attempt}, queue {ctx.queue}"
    head += f", cid {fields['correlation_id']})"
    log.info("%s started", head, extra=fields)
    start = time.perf_counter()
    try:
        value = await call_next()
    except RateLimited as exc:
        took = time.perf_counter() - start
        log.info(
            "%s rate limited in %.3fs: %s (waits, no attempt used)",
            head,
            took,
            exc.reason,
            extra={**fields, "duration": took, "outcome": "rate_limited"},
        )
        raise
    except BaseException as exc:
        took = time.perf_counter() - start
        log.info(
            "%s failed in %.3fs: %s",
            head,
            took,
            type(exc).__name__,
            extra={**fields, "duration": took, "outcome": "failed"},
        )
        raise
    took = time.perf_counter() - start
    log.info(
        "%s succeeded in %.3fs",
        head,
        took,
        extra={**fields, "duration": took, "outcome": "succeeded"},
    )
    return value
