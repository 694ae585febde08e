"""Sentry that cooperates with the app: the app's SDK is never re-initialised, Conveyor's
own set-up honours the SENTRY_* variables, and every job runs in its own scope (and
transaction when tracing is on), sent through the real sentry-sdk to an in-memory
transport."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor import Conveyor, Retry, current_job
from conveyor.errors import ConfigError
from conveyor.logs import configure_logging, log, reset_logging
from conveyor.settings import load_settings
from conveyor.testing import drain

sentry_sdk = pytest.importorskip("sentry_sdk", reason="needs conveyor[sentry]")

from sentry_sdk.envelope import Envelope  # noqa: E402 (after the importorskip)
from sentry_sdk.integrations.logging import LoggingIntegration  # noqa: E402
from sentry_sdk.transport import Transport  # noqa: E402


class Captured(Transport):
    """A transport that keeps envelopes in memory instead of sending them."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        return [dict(e) for env in self.envelopes if (e := env.get_event()) is not None]

    def transactions(self) -> list[dict[str, Any]]:
        return [dict(t) for env in self.envelopes if (t := env.get_transaction_event()) is not None]


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    reset_logging()
    root.setLevel(level)
    sentry_sdk.get_client().close(timeout=2)
    sentry_sdk.get_global_scope().set_client(None)


@pytest.fixture(autouse=True)
def _no_sentry_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SENTRY_DSN", "SENTRY_RELEASE", "SENTRY_ENVIRONMENT", "SENTRY_TRACES_SAMPLE_RATE"):
        monkeypatch.delenv(name, raising=False)


def app_init(**options: Any) -> Captured:
    """``sentry_sdk.init`` as an app calls it, sending to memory; the transport is returned."""
    transport = Captured()
    sentry_sdk.init(
        dsn="https://app@sentry.example/1",
        transport=transport,
        default_integrations=False,
        integrations=[LoggingIntegration(level=logging.INFO, event_level=None)],
        **options,
    )
    return transport


# -- the SDK belongs to whoever initialised it first ---------------------------------------


def test_the_sentry_channel_never_reinitialises_the_apps_sdk() -> None:
    # Given the app initialised Sentry with its release, environment and sampling
    transport = app_init(release="shop@1.2", environment="staging", traces_sample_rate=0.25)
    client = sentry_sdk.get_client()
    # When Conveyor's sentry channel is set up with a DSN of its own
    configure_logging(load_settings(log_channel="sentry", sentry_dsn="http://other@127.0.0.1:9/2"))
    log.error("card declined")
    sentry_sdk.flush(timeout=2)
    # Then the app's client, options and transport are the ones in use
    assert sentry_sdk.get_client() is client
    options = sentry_sdk.get_client().options
    assert (options["release"], options["environment"], options["traces_sample_rate"]) == (
        "shop@1.2",
        "staging",
        0.25,
    )
    [event] = transport.events()
    assert event["logentry"]["message"] == "card declined"
    assert event["release"] == "shop@1.2"


def test_conveyor_initialises_the_sdk_with_the_sentry_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given no SDK initialised, and the usual SENTRY_* variables
    monkeypatch.setenv("SENTRY_RELEASE", "shop@2.0")
    monkeypatch.setenv("SENTRY_ENVIRONMENT", "production-eu")
    monkeypatch.setenv("SENTRY_TRACES_SAMPLE_RATE", "0.5")
    # When the sentry channel is set up
    configure_logging(load_settings(log_channel="sentry", sentry_dsn="http://k@127.0.0.1:9/3"))
    # Then Conveyor's SDK carries them
    options = sentry_sdk.get_client().options
    assert (options["release"], options["environment"], options["traces_sample_rate"]) == (
        "shop@2.0",
        "production-eu",
        0.5,
    )


@pytest.mark.parametrize("raw", ["lots", "1.5", "-0.1", "nan"])
def test_a_traces_rate_conveyor_cannot_use_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("SENTRY_TRACES_SAMPLE_RATE", raw)
    with pytest.raises(ConfigError, match=rf"SENTRY_TRACES_SAMPLE_RATE='{raw}' is not a number"):
        configure_logging(load_settings(log_channel="sentry", sentry_dsn="http://k@127.0.0.1:9/3"))
    assert not sentry_sdk.get_client().is_active()


# -- a scope, and a transaction, per job ---------------------------------------------------


def test_a_failing_job_is_captured_with_its_scope(app: Conveyor) -> None:
    # Given an app that initialised Sentry (no tracing), and a task that logs then fails
    transport = app_init()

    @app.task(queue="shop", retries=0)
    def charge(order: int) -> None:
        logging.getLogger("shop").warning("charging %d", order)
        raise ValueError("card declined")

    logging.getLogger("shop").warning("before any job")
    # When the job runs
    handle = charge.enqueue(7)
    drain(app)
    sentry_sdk.flush(timeout=2)
    # Then one event holds the exception, as unhandled, with the job's tags and context
    [event] = transport.events()
    [exc] = event["exception"]["values"]
    assert (exc["type"], exc["value"]) == ("ValueError", "card declined")
    assert exc["mechanism"] == {"type": "conveyor", "handled": False}
    assert event["tags"] == {
        "conveyor.task": charge.name,
        "conveyor.queue": "shop",
        "conveyor.job_id": handle.id,
        "conveyor.attempt": "1",
        "conveyor.correlation_id": handle.id,  # a root job: its own id
    }
    context = event["contexts"]["conveyor"]
    assert (context["job_id"], context["task"], context["attempt"]) == (handle.id, charge.name, 1)
    assert event["transaction"] == charge.name
    # and its breadcrumbs are the job's own lines, not what was logged before it
    crumbs = [c["message"] for c in event["breadcrumbs"]["values"]]
    assert "charging 7" in crumbs
    assert "before any job" not in crumbs


def test_each_run_is_a_transaction_when_tracing_is_on(app: Conveyor) -> None:
    # Given tracing on, and a task that asks for a retry once, then succeeds
    transport = app_init(traces_sample_rate=1.0)

    @app.task(retries=3)
    def sync_stock() -> None:
        if current_job().attempt == 1:
            raise Retry(delay=1, reason="supplier busy")

    @app.task(retries=0)
    def broken() -> None:
        raise RuntimeError("bug")

    # When the jobs run
    sync_stock.enqueue()
    broken.enqueue()
    drain(app)
    sentry_sdk.flush(timeout=2)
    # Then every run is a transaction named after its task, with its outcome as status
    seen = sorted(
        (t["transaction"], t["contexts"]["trace"]["op"], t["contexts"]["trace"]["status"])
        for t in transport.transactions()
    )
    assert seen == [
        (broken.name, "queue.task.conveyor", "internal_error"),
        (sync_stock.name, "queue.task.conveyor", "aborted"),
        (sync_stock.name, "queue.task.conveyor", "ok"),
    ]
    # and only the real error is an error event: a Retry steers the job, it is no error
    assert [e["exception"]["values"][0]["type"] for e in transport.events()] == ["RuntimeError"]


def test_a_job_continues_the_trace_of_the_code_that_enqueued_it(app: Conveyor) -> None:
    transport = app_init(traces_sample_rate=1.0)

    @app.task
    def send_receipt(order: int) -> None: ...

    # Given a job enqueued inside a web request's transaction
    with sentry_sdk.start_transaction(name="POST /orders", op="http.server") as request:
        handle = send_receipt.enqueue(7)
    # When it runs
    drain(app).raise_on_failure()
    sentry_sdk.flush(timeout=2)
    # Then the job carried the trace, and its transaction is a child of the request's
    assert handle.info().headers["sentry-trace"].startswith(request.trace_id)
    [job] = [t for t in transport.transactions() if t["transaction"] == send_receipt.name]
    assert job["contexts"]["trace"]["trace_id"] == request.trace_id
    assert job["contexts"]["trace"]["parent_span_id"] == request.span_id


def test_without_tracing_no_transaction_is_sent(app: Conveyor) -> None:
    transport = app_init()

    @app.task
    def work() -> None: ...

    work.enqueue()
    drain(app).raise_on_failure()
    sentry_sdk.flush(timeout=2)
    assert transport.transactions() == []
    assert transport.events() == []


def test_jobs_run_unchanged_when_no_sdk_is_active(app: Conveyor) -> None:
    @app.task
    def work() -> int:
        return 7

    handle = work.enqueue()
    drain(app).raise_on_failure()
    assert handle.result() == 7
    assert not sentry_sdk.get_client().is_active()
    assert not {"sentry-trace", "baggage"} & handle.info().headers.keys()


def test_running_jobs_never_imports_sentry_sdk() -> None:
    # Given a fresh interpreter with sentry-sdk installed but not imported by the app
    code = (
        "import sys\n"
        "from conveyor.testing import make_test_app, drain\n"
        "app = make_test_app()\n"
        "@app.task\n"
        "def work() -> int:\n"
        "    return 1\n"
        "work.enqueue()\n"
        "drain(app).raise_on_failure()\n"
        "assert 'sentry_sdk' not in sys.modules, 'sentry_sdk was imported'\n"
    )
    # When it runs a job; Then sentry_sdk is still not imported
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")},
        check=False,
    )
    assert result.returncode == 0, result.stderr
