"""OpenTelemetry spans for enqueue and job runs, in one process, with the SDK's in-memory
exporter (the trace across a real worker process is in tests/integration/test_otel_worker.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from conveyor import ConfigError, Conveyor, RateLimited, Worker
from conveyor.middleware.otel import instrument


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    yield InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def by_kind(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in spans if s.kind is kind]


async def test_a_job_run_is_a_child_of_the_span_that_enqueued_it(
    app: Conveyor, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    instrument(app, tracer_provider=provider)
    tracer = provider.get_tracer("test")

    @app.task(name="mail.send", queue="mail", priority="high")
    def send(to: str) -> None:
        # A span the task makes, in its thread, belongs to the job's trace
        with tracer.start_as_current_span("smtp"):
            pass

    # Given a request span that enqueues a job
    with tracer.start_as_current_span("POST /signup") as request:
        handle = send.enqueue("a@example.com")
    job = await app.backend.get(handle.id)
    assert job is not None and job.headers["traceparent"].startswith("00-")
    # When a worker runs it
    await Worker(app, burst=True, reaper=False, queues=("mail",)).run()
    spans = exporter.get_finished_spans()
    [send_span] = by_kind(spans, SpanKind.PRODUCER)
    [process] = by_kind(spans, SpanKind.CONSUMER)
    [smtp] = [s for s in spans if s.name == "smtp"]
    # Then request → send → process → smtp is one trace
    assert send_span.name == "send mail" and process.name == "process mail"
    assert send_span.parent is not None
    assert send_span.parent.span_id == request.get_span_context().span_id
    assert process.parent is not None and process.parent.span_id == send_span.context.span_id
    assert [link.context.span_id for link in process.links] == [send_span.context.span_id]
    assert smtp.parent is not None and smtp.parent.span_id == process.context.span_id
    assert len({s.context.trace_id for s in spans}) == 1
    # with the messaging attributes
    assert send_span.attributes is not None and process.attributes is not None
    for span in (send_span, process):
        assert span.attributes["messaging.system"] == "conveyor"
        assert span.attributes["messaging.destination.name"] == "mail"
        assert span.attributes["messaging.message.id"] == handle.id
        assert span.attributes["messaging.conveyor.task"] == "mail.send"
        assert span.attributes["messaging.conveyor.priority"] == "high"
        # enqueued outside any correlation scope: the job's own id is its correlation id
        assert "correlation_id" not in job.headers
        assert span.attributes["messaging.message.conversation_id"] == handle.id
    assert send_span.attributes["messaging.operation.type"] == "send"
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.attributes["messaging.conveyor.attempt"] == 1
    assert process.status.status_code is StatusCode.UNSET


async def test_each_failed_attempt_records_its_exception_and_an_error_status(
    app: Conveyor, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    instrument(app, tracer_provider=provider)

    @app.task(name="flaky", retries=1, backoff=0)
    async def flaky() -> None:
        raise ValueError("card declined")

    await flaky.enqueue_async()
    await Worker(app, burst=True, reaper=False).run()
    runs = by_kind(exporter.get_finished_spans(), SpanKind.CONSUMER)
    assert [r.attributes["messaging.conveyor.attempt"] for r in runs if r.attributes] == [1, 2]
    for run in runs:
        assert run.status.status_code is StatusCode.ERROR
        assert run.status.description == "ValueError: card declined"
        [event] = run.events
        assert event.name == "exception" and event.attributes is not None
        assert event.attributes["exception.type"] == "ValueError"
        assert event.attributes["exception.message"] == "card declined"


async def test_rate_limited_is_not_an_error_and_a_batch_gets_one_span_per_job(
    app: Conveyor, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    instrument(app, tracer_provider=provider)
    seen: list[int] = []

    @app.task(name="api.call")
    async def call(n: int) -> None:
        if not seen:
            seen.append(n)
            raise RateLimited(retry_after=0)
        seen.append(n)

    handles = app.enqueue_many([call.call(1), call.call(2)])
    sends = by_kind(exporter.get_finished_spans(), SpanKind.PRODUCER)
    assert sorted(s.attributes["messaging.message.id"] for s in sends if s.attributes) == sorted(
        h.id for h in handles
    )
    await Worker(app, burst=True, reaper=False).run()
    runs = by_kind(exporter.get_finished_spans(), SpanKind.CONSUMER)
    deferred = [r for r in runs if r.attributes and r.attributes.get("messaging.conveyor.outcome")]
    assert len(deferred) == 1 and deferred[0].status.status_code is StatusCode.UNSET
    assert len(runs) == 3 and all(r.status.status_code is StatusCode.UNSET for r in runs)


async def test_a_failed_store_ends_the_send_span_with_the_error(
    app: Conveyor, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    instrument(app, tracer_provider=provider)

    @app.enqueue_middleware
    async def refuse(ctx, call_next):  # type: ignore[no-untyped-def]
        raise ConnectionError("store down")

    @app.task(name="t")
    def t() -> None: ...

    with pytest.raises(ConnectionError):
        t.enqueue()
    [span] = exporter.get_finished_spans()
    assert span.kind is SpanKind.PRODUCER and span.status.status_code is StatusCode.ERROR


def test_instrumenting_twice_is_refused_and_the_global_provider_is_the_default(
    app: Conveyor,
) -> None:
    otel = instrument(app)
    # No provider given: the global one, whatever the app sets up (a proxy until then)
    assert otel.tracer is not None and app.middlewares.job[0] == otel.job
    assert app.middlewares.enqueue[-1] == otel.enqueue
    assert trace.get_tracer_provider() is not None
    with pytest.raises(ConfigError, match="already instrumented"):
        instrument(app)
