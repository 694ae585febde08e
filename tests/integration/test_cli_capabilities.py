"""The CLI on stores that lack capabilities: one line naming what is missing, exit 2, and
nothing started; what a store does keep still works.

``example://`` (the plug-in store in ``tests/plugin_store``) has the core verbs and `Limits`
only; `tests.unit.partial_stores` makes the other subsets from the memory store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.integration.cli_support import Run, conveyor_cli
from tests.unit.partial_stores import patch_apps
from typer.testing import CliRunner, Result

from conveyor import Conveyor
from conveyor.cli import app as cli

ADMIN_LACKING = "the example:// store cannot list, count, repair or pause jobs"
TELEMETRY_LACKING = "does not keep job history or a worker registry"
SCHEDULING_LACKING = "the example:// store cannot elect a scheduler or record cron ticks"

APP_SOURCE = """
from conveyor import Conveyor

app = Conveyor()


@app.task(name="add")
def add(a: int, b: int) -> int:
    return a + b
"""
CRON_SOURCE = (
    APP_SOURCE
    + """

@app.cron("*/5 * * * *", name="every-five")
def every_five() -> None:
    pass
"""
)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def one_error_line(result: Result) -> str:
    """The command's only line of output, an error (never a traceback)."""
    assert "Traceback" not in result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: "), line
    return line


@pytest.mark.parametrize(
    "command",
    [
        ("status",),
        ("jobs", "list"),
        ("jobs", "cancel", "some-id"),
        ("jobs", "delete", "some-id"),
        ("failed", "list"),
        ("failed", "retry", "--all"),
        ("failed", "purge"),
        ("failed", "purge", "--yes"),
    ],
)
def test_verbs_that_list_count_or_repair_refuse_a_store_without_admin(
    command: tuple[str, ...],
) -> None:
    result = invoke(*command, "--url", "example://")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert ADMIN_LACKING in line
    verb = " ".join(w for w in command[:2] if not w.startswith("-") and w != "some-id")
    assert f"`conveyor {verb}` needs a store that has it" in line


def test_workers_refuses_a_store_without_telemetry() -> None:
    result = invoke("workers", "--url", "example://")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert TELEMETRY_LACKING in line and "`conveyor workers`" in line


def test_jobs_show_needs_only_the_core() -> None:
    result = invoke("jobs", "show", "nope", "--url", "example://")
    assert result.exit_code == 1
    assert "job nope does not exist" in one_error_line(result)


def test_health_pings_a_store_without_admin_and_refuses_worker_without_telemetry() -> None:
    ok = invoke("health", "--url", "example://")
    assert ok.exit_code == 0, ok.output
    assert "ok: backend example://" in ok.output
    worker = invoke("health", "--url", "example://", "--worker", "w-1")
    assert worker.exit_code == 2
    line = one_error_line(worker)
    assert TELEMETRY_LACKING in line and "`conveyor health --worker`" in line


def test_status_without_telemetry_shows_the_counts_and_says_there_is_no_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a store that keeps jobs and counters but no worker registry, with one job
    patch_apps(monkeypatch, "admin", "limits", "scheduling")
    app = Conveyor("partial://")

    @app.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    add.enqueue(1, 2)
    # When status is asked for, as a table and as JSON
    table = invoke("status", "--url", "partial://")
    as_json = invoke("status", "--url", "partial://", "--json")
    # Then the counts are there, and one line says why workers are not
    assert table.exit_code == 0, table.output
    assert "this store keeps no worker registry" in table.output
    assert "workers live" not in table.output
    assert "lease counters: fenced 0" in table.output
    assert as_json.exit_code == 0, as_json.output
    doc = json.loads(as_json.stdout)
    assert doc["workers"] is None
    assert doc["totals"]["ready"] == 1


def test_status_with_telemetry_counts_live_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    patch_apps(monkeypatch, "admin", "telemetry")
    result = invoke("status", "--url", "partial://")
    assert result.exit_code == 0, result.output
    assert "workers live: 0" in result.output
    assert "worker registry" not in result.output


# -- the scheduler: real processes, with an app module -------------------------------------
@pytest.fixture
def run(tmp_path: Path) -> Run:
    """Run ``python -m conveyor ARGS...`` on ``example://``, with two app modules at hand."""
    (tmp_path / "plainapp.py").write_text(APP_SOURCE)
    (tmp_path / "cronapp.py").write_text(CRON_SOURCE)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "WORKER_"))}
    path = os.pathsep.join(p for p in (str(tmp_path), base.get("PYTHONPATH")) if p)
    env = {**base, "CONVEYOR_URL": "example://", "PYTHONPATH": path, "CI": "true"}

    return conveyor_cli(tmp_path, env)


@pytest.mark.parametrize(
    ("command", "purpose"),
    [
        (("scheduler", "--app", "cronapp:app"), "the scheduler needs"),
        (("worker", "--app", "cronapp:app", "--mode", "scheduler-only"), "the scheduler needs"),
        (("schedule", "list", "--app", "cronapp:app"), "`conveyor schedule list`"),
        (
            ("worker", "--app", "cronapp:app", "--burst"),
            "the worker's built-in scheduler (--no-scheduler turns it off) needs",
        ),
        (
            ("run", "--app", "cronapp:app"),  # before any worker process starts
            "the worker's built-in scheduler (--no-scheduler turns it off) needs",
        ),
    ],
)
def test_the_scheduler_refuses_a_store_without_scheduling_before_it_starts(
    run: Run, command: tuple[str, ...], purpose: str
) -> None:
    proc = run(*command)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    assert SCHEDULING_LACKING in errors[0] and purpose in errors[0]
    assert "conveyor scheduler ·" not in proc.stderr  # refused before its banner
    assert "conveyor worker ·" not in proc.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("worker", "--app", "plainapp:app", "--burst"),  # no entries: no scheduler needed
        ("worker", "--app", "cronapp:app", "--burst", "--no-scheduler"),
    ],
)
def test_a_worker_without_a_scheduler_runs_on_a_store_without_scheduling(
    run: Run, command: tuple[str, ...]
) -> None:
    proc = run(*command)
    assert proc.returncode == 0, proc.stderr
    assert "conveyor worker ·" in proc.stderr


LIMITED_SOURCE = (
    APP_SOURCE
    + """

@app.task(name="call_api", rate_limit="10/s")
def call_api() -> None:
    pass
"""
)


@pytest.mark.parametrize("command", [("run",), ("worker", "--burst")])
def test_workers_refuse_a_store_without_limits_when_a_task_is_limited(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: tuple[str, ...]
) -> None:
    # Given an app with a rate-limited task, on a store that keeps no limits
    patch_apps(monkeypatch, "admin", "telemetry", "scheduling")
    (tmp_path / "limitedapp.py").write_text(LIMITED_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    # When workers are started for it (`conveyor run` checks before any process starts)
    result = invoke(*command, "--app", "limitedapp:app", "--url", "partial://")
    # Then one line names the store, the task and its option, and nothing started
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "conveyor worker ·" not in result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert "does not keep rate limits or concurrency slots" in line
    assert "task 'call_api''s rate_limit" in line
