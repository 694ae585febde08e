"""docs/opentelemetry.md, run as a reader would: its spans form the trace it describes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .docs_support import PageRun

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_the_pages_example_makes_one_trace_from_request_to_run(tmp_path: Path) -> None:
    # Given the page's set-up, app, request script and worker, run in order
    run = PageRun(tmp_path)
    run.run_page(ROOT / "docs/opentelemetry.md")
    assert run.skipped == [
        "installs packages; the test runs in an environment that has them",
        "needs a collector and the OTLP exporter package",
    ]
    assert run.states() == {"myproject.jobs.send_welcome": ["succeeded"]}
    # Then spans.jsonl holds the three spans the page names, as one trace
    spans = {
        s["name"]: s for s in map(json.loads, (tmp_path / "spans.jsonl").read_text().splitlines())
    }
    request, send, process = spans["POST /signup"], spans["send mail"], spans["process mail"]
    assert send["kind"] == "SpanKind.PRODUCER" and process["kind"] == "SpanKind.CONSUMER"
    assert send["parent_id"] == request["context"]["span_id"]
    assert process["parent_id"] == send["context"]["span_id"]
    assert len({s["context"]["trace_id"] for s in (request, send, process)}) == 1
    # the consumer span written by the worker process
    assert process["resource"]["attributes"]["service.name"] == "myproject"
    assert process["attributes"]["messaging.conveyor.task"] == "myproject.jobs.send_welcome"
