"""OpenTelemetry: a producer span per enqueued job, a consumer span around each run.

```python
from conveyor.middleware.otel import instrument

instrument(app)  # after the app's TracerProvider is set up (in producers and workers)
```

Enqueueing a job opens a ``send {queue}`` span (kind ``PRODUCER``) and writes its context
into the job's headers with the configured propagator (W3C ``traceparent``, and
``tracestate``/``baggage`` when present). A worker running the job opens a ``process
{queue}`` span (kind ``CONSUMER``) whose parent (and link) is that context, so one trace goes from
the web request that enqueued the job through every attempt and whatever the task does
(spans made inside a plain ``def`` task, in its thread, are children of it too).

Attributes follow OpenTelemetry's messaging conventions: ``messaging.system`` is
``conveyor``, ``messaging.destination.name`` the queue, ``messaging.message.id`` the job
id, ``messaging.operation.type`` ``send`` or ``process``, and
``messaging.message.conversation_id`` the correlation id; Conveyor's own are
``messaging.conveyor.task``, ``.priority`` and ``.attempt``. A run that raises records the
exception and sets the span's status to ``ERROR`` (a success leaves it unset, as the
conventions ask of instrumentation); `RateLimited` is not a failure: it only sets
``messaging.conveyor.outcome`` to ``deferred``.

Spans go to the global tracer provider the application configured (or the one given to
`instrument`); Conveyor never sets one up. Needs ``pip install 'conveyor[otel]'``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConfigError, RateLimited

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from conveyor.app import Conveyor
    from conveyor.handle import JobHandle
    from conveyor.job import NewJob
    from conveyor.middleware.chain import (
        EnqueueContext,
        EnqueueNext,
        ExecutionContext,
        JobNext,
    )

SYSTEM = "conveyor"
#: The correlation id's header (`conveyor.middleware.tracing`).
CORRELATION_HEADER = "correlation_id"


class OpenTelemetryMiddleware:
    """The enqueue and job middleware that make the spans; `instrument` adds them to an app."""

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        try:
            from opentelemetry import propagate, trace
        except ImportError:
            raise ConfigError(
                "OpenTelemetry tracing needs the opentelemetry-api package: "
                "pip install 'conveyor[otel]'"
            ) from None
        self._trace = trace
        self._propagate = propagate
        self.tracer: Tracer = trace.get_tracer(
            "conveyor", _version(), tracer_provider=tracer_provider
        )

    async def enqueue(self, ctx: EnqueueContext, call_next: EnqueueNext) -> list[JobHandle[Any]]:
        """Open one producer span per job, put its context in the job's headers, store."""
        spans = [self._send_span(job) for job in ctx.jobs]
        try:
            handles = await call_next()
        except BaseException as exc:
            for span in spans:
                _failed(span, exc)
                span.end()
            raise
        for span, handle in zip(spans, handles, strict=False):
            span.set_attribute("messaging.message.id", handle.id)
            if handle.existing:  # a unique key matched: the stored job keeps its own headers
                span.set_attribute("messaging.conveyor.existing", True)
            span.end()
        return handles

    def _send_span(self, job: NewJob) -> Span:
        trace = self._trace
        span = self.tracer.start_span(
            f"send {job.queue}",
            kind=trace.SpanKind.PRODUCER,
            attributes=_attributes(
                "send", job.id, job.queue, job.task, job.priority.label, job.headers
            ),
        )
        carrier: dict[str, str] = {}
        self._propagate.inject(carrier, context=trace.set_span_in_context(span))
        job.headers.update(carrier)
        return span

    async def job(self, ctx: ExecutionContext, call_next: JobNext) -> Any:
        """Run the job inside a consumer span whose parent is the context it was sent with."""
        trace = self._trace
        job = ctx.job
        carrier = {k: v for k, v in job.headers.items() if isinstance(v, str)}
        attributes = _attributes(
            "process", job.id, job.queue, job.task, job.priority.label, carrier
        )
        attributes["messaging.message.id"] = job.id
        attributes["messaging.conveyor.attempt"] = ctx.attempt
        sent = self._propagate.extract(carrier)
        # The conventions make the creation context a link; it is the parent too, so the
        # run sits under the request that enqueued it in any trace view.
        creation = trace.get_current_span(sent).get_span_context()
        with self.tracer.start_as_current_span(
            f"process {job.queue}",
            context=sent,
            kind=trace.SpanKind.CONSUMER,
            attributes=attributes,
            links=[trace.Link(creation)] if creation.is_valid else None,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await call_next()
            except RateLimited:
                span.set_attribute("messaging.conveyor.outcome", "deferred")
                raise
            except BaseException as exc:
                _failed(span, exc)
                raise


def instrument(
    app: Conveyor, *, tracer_provider: TracerProvider | None = None
) -> OpenTelemetryMiddleware:
    """Trace ``app``'s enqueues and job runs with OpenTelemetry; see this module's docstring.

    The job middleware goes outermost (every other layer runs inside the consumer span, so
    log lines and error reports carry its trace); the enqueue middleware innermost (it
    sees the jobs as the other layers left them, and spans end once they are stored).
    Call it once per app, where the app is made, so producers and workers both run it.
    """
    for layer in app.middlewares.job:
        if isinstance(getattr(layer, "__self__", None), OpenTelemetryMiddleware):
            raise ConfigError(
                f"{app!r} is already instrumented with OpenTelemetry; call instrument(app) "
                "once, where the app is made"
            )
    otel = OpenTelemetryMiddleware(tracer_provider)
    app.middlewares.job.insert(0, otel.job)
    app.middlewares.enqueue.append(otel.enqueue)
    return otel


def _attributes(
    operation: str, job_id: str, queue: str, task: str, priority: str, headers: dict[str, Any]
) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": queue,
        "messaging.conveyor.task": task,
        "messaging.conveyor.priority": priority,
    }
    # A job enqueued outside any job or correlation scope has no header: its own id is
    # its correlation id (`conveyor.middleware.tracing.job_correlation_id`).
    correlation = headers.get(CORRELATION_HEADER)
    attributes["messaging.message.conversation_id"] = (
        correlation if isinstance(correlation, str) and correlation else job_id
    )
    return attributes


def _failed(span: Span, exc: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.set_attribute("error.type", type(exc).__qualname__)


def _version() -> str:
    try:
        return version("conveyor")
    except PackageNotFoundError:  # running from a source tree
        return "0"
