"""Tracing: a correlation id that follows work from the enqueuing code into every job.

At enqueue a job gets ``headers["correlation_id"]`` when the caller has one (a
`correlation_scope`, or the running job's). A job enqueued with none carries no header:
its correlation id is its own job id (`job_correlation_id`), which every reader (logs,
Sentry, OpenTelemetry) falls back to, so a root job costs no extra id nor stored bytes.
While the job runs its id is in a contextvar, so the job's log lines carry it and any job
it enqueues inherits it: a child of a root job carries the root's job id.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from conveyor.context import _current

if TYPE_CHECKING:
    from conveyor.handle import JobHandle
    from conveyor.middleware.chain import (
        EnqueueContext,
        EnqueueNext,
        ExecutionContext,
        JobNext,
    )

HEADER = "correlation_id"
_correlation: ContextVar[str | None] = ContextVar("conveyor_correlation_id", default=None)


def correlation_id() -> str | None:
    """The correlation id of the running job or `correlation_scope`, if any."""
    return _correlation.get()


@contextlib.contextmanager
def correlation_scope(value: str | None = None) -> Iterator[str]:
    """Make jobs enqueued in this block carry ``value`` (a new id if None).

    For instance one id per web request, so its jobs can be found by it.
    """
    cid = value or uuid.uuid4().hex
    token = _correlation.set(cid)
    try:
        yield cid
    finally:
        _correlation.reset(token)


def job_correlation_id(job_id: str, headers: Mapping[str, Any]) -> str:
    """A job's correlation id: its ``correlation_id`` header, else its own id (a job
    enqueued outside any job or `correlation_scope` is the root of its own chain)."""
    cid = headers.get(HEADER)
    return cid if isinstance(cid, str) and cid else job_id


async def trace_enqueue(ctx: EnqueueContext, call_next: EnqueueNext) -> list[JobHandle[Any]]:
    """Give every job the caller's correlation id, if there is one (no header otherwise:
    the job's own id is its correlation id)."""
    current = _correlation.get()
    if current:
        for job in ctx.jobs:
            if HEADER not in job.headers:
                job.headers[HEADER] = current
    return await call_next()


async def trace_job(ctx: ExecutionContext, call_next: JobNext) -> Any:
    """Set the job's correlation id (its job id if it has none) while it runs."""
    token = _correlation.set(job_correlation_id(ctx.job.id, ctx.job.headers))
    try:
        return await call_next()
    finally:
        _correlation.reset(token)


class CorrelationIdFilter(logging.Filter):
    """Adds ``correlation_id`` and ``job_id`` to every record a handler sees.

    Attach it to a handler (``handler.addFilter(CorrelationIdFilter())``) and use
    ``%(correlation_id)s`` in its format: lines logged by task code then carry the id.
    Outside a job both are ``"-"``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record; never drops it."""
        if not hasattr(record, "correlation_id"):
            record.correlation_id = _correlation.get() or "-"
        if not hasattr(record, "job_id"):
            job = _current.get()
            record.job_id = job.id if job is not None else "-"
        return True
