"""Sentry: each job runs in its own Sentry scope, and in a transaction when tracing is on.

What sentry-sdk's own integrations give Celery, RQ, arq, Huey and Dramatiq users: an event
sent while a job runs (its exception, an error line it logs) carries the job's task,
queue, id, attempt and correlation id as tags (``conveyor.task``, ...) and a ``conveyor``
context, is named after the task, and has only the job's own breadcrumbs. With tracing on
(``traces_sample_rate`` or ``traces_sampler`` in the SDK's options) each run is also a
transaction named after the task (op ``queue.task.conveyor``), with the status ``ok``,
``internal_error`` or ``aborted`` (a `Retry` or `RateLimited`).

An exception the task raises is captured as unhandled (mechanism ``conveyor``) and raised
on for the executor to settle; `Retry` and `RateLimited` steer the job and are not errors.
At enqueue, `sentry_enqueue` puts the caller's trace in the job's ``sentry-trace`` and
``baggage`` headers, and the job continues that trace.

Both are built-ins, and pass-throughs unless an SDK is active, whoever initialised it
(the app, or the sentry log channel). They never import sentry-sdk themselves:
``sys.modules`` tells whether anything did, so a process without the ``sentry`` extra pays
one dict lookup per job.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from conveyor.errors import RateLimited, Retry
from conveyor.middleware.tracing import HEADER

if TYPE_CHECKING:
    from sentry_sdk.client import BaseClient
    from sentry_sdk.scope import Scope
    from sentry_sdk.tracing import Span

    from conveyor.handle import JobHandle
    from conveyor.middleware.chain import (
        EnqueueContext,
        EnqueueNext,
        ExecutionContext,
        JobNext,
    )

OP = "queue.task.conveyor"
ORIGIN = "auto.queue.conveyor"
MECHANISM = "conveyor"
#: The job headers that carry the enqueuing code's trace into the job.
TRACE_HEADERS = ("sentry-trace", "baggage")


async def sentry_job(ctx: ExecutionContext, call_next: JobNext) -> Any:
    """Run the job in its own Sentry scope (and transaction) when Sentry is in use."""
    client = _active_client()
    if client is None:
        return await call_next()
    import sentry_sdk
    from sentry_sdk.tracing_utils import has_tracing_enabled

    with sentry_sdk.isolation_scope() as scope:
        _describe(scope, ctx)
        # Continues the enqueuing code's trace (`sentry_enqueue`), or starts a new one.
        transaction = sentry_sdk.continue_trace(
            _trace_headers(ctx.headers), op=OP, name=ctx.task.name, source="task", origin=ORIGIN
        )
        if not has_tracing_enabled(client.options):
            return await _captured(call_next, None)
        with sentry_sdk.start_transaction(transaction):
            # The exception leaves the block only after it: the SDK marks a transaction
            # that an exception passes through as internal_error, a Retry's included.
            try:
                return await _captured(call_next, transaction)
            except Exception as exc:  # noqa: BLE001 (raised again below the block)
                failure = exc
        raise failure


async def sentry_enqueue(ctx: EnqueueContext, call_next: EnqueueNext) -> list[JobHandle[Any]]:
    """Put the caller's Sentry trace in each job's headers, for the job to continue it.

    A web request's trace then leads to the jobs it enqueued, as with sentry-sdk's Celery
    integration. Headers already set (by the caller) are kept.
    """
    if _active_client() is None:
        return await call_next()
    import sentry_sdk

    trace = {"sentry-trace": sentry_sdk.get_traceparent(), "baggage": sentry_sdk.get_baggage()}
    for job in ctx.jobs:
        for key, value in trace.items():
            if value and key not in job.headers:
                job.headers[key] = value
    return await call_next()


def _active_client() -> BaseClient | None:
    """The SDK's client if anyone initialised it; sentry-sdk is never imported for this."""
    if "sentry_sdk" not in sys.modules:
        return None
    import sentry_sdk

    client = sentry_sdk.get_client()
    return client if client.is_active() else None


def _trace_headers(headers: dict[str, Any]) -> dict[str, str]:
    return {k: v for k in TRACE_HEADERS if isinstance(v := headers.get(k), str) and v}


def _describe(scope: Scope, ctx: ExecutionContext) -> None:
    """Put the job on the scope: tags to search by, a context to read, the task as name."""
    cid = ctx.headers.get(HEADER)
    correlation = cid if isinstance(cid, str) and cid else ctx.job.id
    scope.clear_breadcrumbs()  # the worker's lines before this job are not its story
    scope.set_transaction_name(ctx.task.name, source="task")
    scope.set_tag("conveyor.task", ctx.task.name)
    scope.set_tag("conveyor.queue", ctx.queue)
    scope.set_tag("conveyor.job_id", ctx.job.id)
    scope.set_tag("conveyor.attempt", str(ctx.attempt))
    scope.set_tag("conveyor.correlation_id", correlation)
    scope.set_context(
        "conveyor",
        {
            "job_id": ctx.job.id,
            "task": ctx.task.name,
            "queue": ctx.queue,
            "attempt": ctx.attempt,
            "max_retries": ctx.job.max_retries,
            "correlation_id": correlation,
            "worker_id": ctx.context.worker_id,
        },
    )


async def _captured(call_next: JobNext, transaction: Span | None) -> Any:
    """The job's result; its exception captured (unless it steers the job) and re-raised."""
    import sentry_sdk
    from sentry_sdk.utils import event_from_exception

    try:
        value = await call_next()
    except (Retry, RateLimited):
        if transaction is not None:
            transaction.set_status("aborted")
        raise
    except Exception as exc:
        if transaction is not None:
            transaction.set_status("internal_error")
        event, hint = event_from_exception(
            exc,
            client_options=sentry_sdk.get_client().options,
            mechanism={"type": MECHANISM, "handled": False},
        )
        sentry_sdk.capture_event(event, hint=hint)
        raise
    if transaction is not None:
        transaction.set_status("ok")
    return value
