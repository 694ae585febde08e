"""One trace across processes: this test enqueues, a real ``conveyor worker`` runs the jobs.

The producer (this process) records its spans with the SDK's in-memory exporter; the
worker's app module sets up the SDK the way an application would, with an in-memory
exporter too, and writes what it holds to a file when the process exits. The consumer
spans must be children of the producer spans, carried by the ``traceparent`` header.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tests.integration.cli_support import conveyor_cli

from conveyor import Conveyor
from conveyor.middleware.otel import instrument

APP = textwrap.dedent(
    """
    import atexit, json, os

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from conveyor import Conveyor
    from conveyor.middleware.otel import instrument

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # the application's own set-up, as in production


    @atexit.register
    def dump() -> None:
        with open(os.environ["SPANS_FILE"], "w") as out:
            for span in exporter.get_finished_spans():
                out.write(span.to_json(indent=None) + "\\n")


    app = Conveyor()
    instrument(app)
    tracer = trace.get_tracer("otel_app")


    @app.task(name="otel.ok", queue="traced")
    def ok(n: int) -> int:
        with tracer.start_as_current_span("inside"):
            return n * 2


    @app.task(name="otel.boom", queue="traced", retries=0)
    async def boom() -> None:
        raise ValueError("boom")
    """
)


def test_worker_spans_continue_the_producers_trace(tmp_path: Path) -> None:
    (tmp_path / "otel_app.py").write_text(APP)
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    spans_file = tmp_path / "spans.jsonl"
    # Given a producer that traces with its own provider and enqueues by name
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    producer = Conveyor(url)
    instrument(producer, tracer_provider=provider)
    with provider.get_tracer("test").start_as_current_span("request"):
        ok = producer.task_by_name("otel.ok").options(queue="traced").enqueue(21)
        boom = producer.task_by_name("otel.boom").options(queue="traced", retries=0).enqueue()
    producer.close()
    sends = {
        s.attributes["messaging.message.id"]: s
        for s in exporter.get_finished_spans()
        if s.kind is SpanKind.PRODUCER and s.attributes
    }
    assert set(sends) == {ok.id, boom.id}
    # When a real worker process runs them
    env = {**os.environ, "CONVEYOR_URL": url, "SPANS_FILE": str(spans_file)}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *sys.path])
    run = conveyor_cli(tmp_path, env)
    done = run("worker", "--app", "otel_app:app", "--burst", "--queues", "traced", timeout=90)
    assert done.returncode == 0, done.stderr
    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    process = {
        s["attributes"]["messaging.message.id"]: s
        for s in spans
        if s["kind"] == "SpanKind.CONSUMER"
    }
    # Then each run is a child of the span that enqueued it, in the same trace
    assert set(process) == {ok.id, boom.id}
    for job_id, run_span in process.items():
        send = sends[job_id].context
        assert run_span["context"]["trace_id"] == f"0x{send.trace_id:032x}"
        assert run_span["parent_id"] == f"0x{send.span_id:016x}"
        assert run_span["name"] == "process traced"
        attrs: dict[str, Any] = run_span["attributes"]
        assert attrs["messaging.system"] == "conveyor"
        assert attrs["messaging.destination.name"] == "traced"
        assert attrs["messaging.conveyor.attempt"] == 1
    # the failing one recorded its exception and an error status
    failed = process[boom.id]
    assert failed["status"]["status_code"] == "ERROR"
    assert [e["attributes"]["exception.message"] for e in failed["events"]] == ["boom"]
    assert process[ok.id]["status"]["status_code"] == "UNSET"
    # and the span made inside the plain-def task (in its thread) is a child of its run
    [inside] = [s for s in spans if s["name"] == "inside"]
    assert inside["parent_id"] == process[ok.id]["context"]["span_id"]
