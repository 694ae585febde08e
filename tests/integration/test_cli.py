"""The real ``conveyor`` CLI, run as subprocesses against a SQLite file.

Each test writes a tiny app module to its ``tmp_path`` and drives ``python -m conveyor``
with ``CONVEYOR_URL=sqlite:///<tmp>/x.db``, checking exit codes, stdout and stderr.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.integration.cli_support import Run, conveyor_cli

APP_SOURCE = """
import time

from conveyor import Conveyor, Fail

app = Conveyor()


@app.task(name="add")
def add(a: int, b: int) -> int:
    return a + b


@app.task(name="boom", retries=0)
async def boom(why: str = "x") -> None:
    raise Fail(f"nope {why}")


@app.task(name="stuck", timeout=0.3, retries=0)
def stuck() -> None:
    time.sleep(60)
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment every CLI call in a test shares: its app module and SQLite file."""
    (tmp_path / "cliapp.py").write_text(APP_SOURCE)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "WORKER_"))}
    path = os.pathsep.join(p for p in (str(tmp_path), base.get("PYTHONPATH")) if p)
    return {
        **base,
        "CONVEYOR_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "PYTHONPATH": path,
        "CI": "true",
        "WORKER_SLEEP": "0.1",
    }


@pytest.fixture
def cli(tmp_path: Path, env: dict[str, str]) -> Run:
    """Run ``python -m conveyor ARGS...`` in ``tmp_path``; ``extra_env`` adds variables."""
    return conveyor_cli(tmp_path, env)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    """stdout of a command that must have succeeded."""
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    """The one JSON document a ``--json`` command printed."""
    return json.loads(ok(proc))


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


def test_enqueue_then_burst_worker_runs_the_job(cli: Run) -> None:
    # Given a job enqueued from the command line
    job_id = ok(cli("enqueue", "add", "--app", "cliapp:app", "--args", "[2, 3]")).strip()
    assert len(job_id) == 26
    # When a burst worker runs until the queue is empty
    worker = cli("worker", "--app", "cliapp:app", "--burst", "--log-level", "info")
    # Then it exits 0 after a banner and logs, and the job succeeded with its result
    assert worker.returncode == 0, worker.stderr
    assert "conveyor worker" in worker.stderr
    assert "1 processed, 1 succeeded" in worker.stderr
    job = as_json(cli("jobs", "show", job_id, "--json"))
    assert job["state"] == "succeeded"
    assert job["result"] == 5
    assert job["args"] == [2, 3]
    assert job["attempts"] == 1


def test_worker_exits_at_once_when_a_sync_task_thread_is_stuck(cli: Run) -> None:
    # Given a plain-def task that overruns its timeout by far
    job_id = ok(cli("enqueue", "stuck", "--app", "cliapp:app")).strip()
    # When a burst worker runs it, the process exits without waiting for the stuck thread
    started = time.monotonic()
    worker = cli("worker", "--app", "cliapp:app", "--burst", timeout=30)
    assert worker.returncode == 3, worker.stderr  # docs/workers.md: a stuck thread
    assert time.monotonic() - started < 30
    job = as_json(cli("jobs", "show", job_id, "--json"))
    assert job["state"] == "dead"
    assert "timeout" in job["last_error"]


def test_enqueue_options_and_unique_key(cli: Run) -> None:
    first = as_json(
        cli(
            "enqueue",
            "add",
            "--app",
            "cliapp:app",
            "--kwargs",
            '{"a": 1, "b": 2}',
            "--queue",
            "mail",
            "--priority",
            "high",
            "--delay",
            "60",
            "--unique-key",
            "k1",
            "--json",
        )
    )
    again = as_json(
        cli(
            "enqueue",
            "add",
            "--app",
            "cliapp:app",
            "--args",
            "[9, 9]",
            "--unique-key",
            "k1",
            "--json",
        )
    )
    assert first["existing"] is False
    assert again == {"id": first["id"], "existing": True}
    job = as_json(cli("jobs", "show", first["id"], "--json"))
    assert (job["queue"], job["priority"], job["state"]) == ("mail", "high", "scheduled")
    assert job["kwargs"] == {"a": 1, "b": 2}


def test_status_json_counts_per_queue_and_priority(cli: Run) -> None:
    for extra in ([], [], ["--priority", "high"], ["--queue", "mail"], ["--delay", "600"]):
        ok(cli("enqueue", "add", "--app", "cliapp:app", "--args", "[1, 1]", *extra))
    status = as_json(cli("status", "--json"))
    rows = {(r["queue"], r["priority"]): r for r in status["queues"]}
    assert rows[("default", "normal")]["ready"] == 2
    assert rows[("default", "normal")]["scheduled"] == 1
    assert rows[("default", "high")]["ready"] == 1
    assert rows[("mail", "normal")]["ready"] == 1
    assert status["totals"]["ready"] == 4
    assert status["totals"]["scheduled"] == 1
    assert set(status["counters"]) == {"fenced", "recovered", "poisoned"}
    assert status["workers"] == 0
    # The table for people names every queue and the totals.
    table = ok(cli("status"))
    assert "mail" in table
    assert "total" in table


def test_failed_list_retry_and_purge(cli: Run) -> None:
    # Given a job that ends dead
    job_id = ok(cli("enqueue", "boom", "--app", "cliapp:app", "--kwargs", '{"why": "t"}'))
    job_id = job_id.strip()
    ok(cli("worker", "--app", "cliapp:app", "--burst"))
    dead = as_json(cli("failed", "list", "--json"))
    assert [j["id"] for j in dead] == [job_id]
    assert dead[0]["last_error"] == "Fail: nope t"
    assert "nope t" in ok(cli("failed", "list"))
    shown = as_json(cli("jobs", "show", job_id, "--json"))
    assert "Traceback" in shown["traceback"]

    # When it is retried, it is ready again with fresh attempts
    assert "retried 1" in ok(cli("failed", "retry", job_id))
    job = as_json(cli("jobs", "show", job_id, "--json"))
    assert (job["state"], job["attempts"]) == ("ready", 0)
    assert cli("failed", "retry", job_id).returncode == 1  # no longer dead

    # And after it dies again, purge without --yes deletes nothing off a terminal
    ok(cli("worker", "--app", "cliapp:app", "--burst"))
    refused = cli("failed", "purge")
    assert refused.returncode == 1
    assert "would delete 1 dead job(s)" in refused.stderr
    assert len(as_json(cli("failed", "list", "--json"))) == 1
    assert "purged 1" in ok(cli("failed", "purge", "--yes"))
    assert as_json(cli("failed", "list", "--json")) == []
    assert cli("jobs", "show", job_id).returncode == 1


def test_failed_retry_all_and_needs_ids_or_all(cli: Run) -> None:
    for _ in range(2):
        ok(cli("enqueue", "boom", "--app", "cliapp:app"))
    ok(cli("worker", "--app", "cliapp:app", "--burst"))
    usage = cli("failed", "retry")
    assert usage.returncode == 2
    assert "--all" in usage.stderr
    assert "retried 2" in ok(cli("failed", "retry", "--all"))
    assert cli("failed", "retry", "--all").returncode == 1


def test_jobs_show_list_and_cancel(cli: Run) -> None:
    job_id = ok(cli("enqueue", "add", "--app", "cliapp:app", "--args", "[1, 2]")).strip()
    missing = cli("jobs", "show", "0" * 26)
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
    shown = ok(cli("jobs", "show", job_id))
    assert job_id in shown
    assert "add" in shown
    listed = as_json(cli("jobs", "list", "--state", "ready", "--task", "add", "--json"))
    assert [j["id"] for j in listed] == [job_id]
    assert as_json(cli("jobs", "list", "--state", "dead", "--json")) == []
    assert "cancelled" in ok(cli("jobs", "cancel", job_id))
    again = cli("jobs", "cancel", job_id)
    assert again.returncode == 1
    assert "already cancelled" in again.stderr
    bad = cli("jobs", "list", "--state", "bogus")
    assert bad.returncode == 2
    assert "unknown state" in bad.stderr


def test_bad_args_json_exits_2_with_a_clear_message(cli: Run) -> None:
    proc = cli("enqueue", "add", "--app", "cliapp:app", "--args", "[1, 2")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "--args is not valid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr
    shape = cli("enqueue", "add", "--app", "cliapp:app", "--kwargs", "[1]")
    assert shape.returncode == 2
    assert "--kwargs must be a JSON object" in shape.stderr


def test_unknown_task_exits_2_listing_registered_ones(cli: Run) -> None:
    proc = cli("enqueue", "nope", "--app", "cliapp:app")
    assert proc.returncode == 2
    assert "no task named 'nope'" in proc.stderr
    assert "registered: add, boom, stuck" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_errors_exit_2_and_missing_backend_exits_3(cli: Run) -> None:
    no_app = cli("worker")
    assert no_app.returncode == 2
    assert "--app" in no_app.stderr
    bad_flag = cli("worker", "--app", "cliapp:app", "--concurrency", "0")
    assert bad_flag.returncode == 2
    assert "WORKER_CONCURRENCY" in bad_flag.stderr
    bad_module = cli("enqueue", "add", "--app", "nosuchmodule:app")
    assert bad_module.returncode == 2
    assert "nosuchmodule" in bad_module.stderr
    # (enqueue: it may create the store, so it tries; `status` refuses a missing file, exit 2)
    unreachable = cli(
        "enqueue",
        "add",
        "--app",
        "cliapp:app",
        "--args",
        "[1, 2]",
        "--url",
        "sqlite:////proc/conveyor-nope/x.db",
    )
    assert unreachable.returncode == 3
    assert "Traceback" not in unreachable.stderr


def test_workers_lists_a_live_worker_which_stops_on_sigterm(
    tmp_path: Path, env: dict[str, str], cli: Run
) -> None:
    ok(cli("migrate"))  # `workers` never creates the store: it must exist before the worker does
    with subprocess.Popen(
        [sys.executable, "-m", "conveyor", "worker", "--app", "cliapp:app"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:

            def listed() -> list[dict[str, Any]]:
                rows = as_json(cli("workers", "--json"))
                return [r for r in rows if r["pid"] == proc.pid]

            [row] = wait_for(listed, timeout=30, what="the worker to register")
            assert row["queues"] == ["*"]
            assert "1 live worker" in ok(cli("workers"))
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, stderr
    assert "received SIGTERM" in stderr
    assert as_json(cli("workers", "--json")) == []


@pytest.mark.slow
def test_demo_runs_to_completion_and_prints_a_summary(cli: Run) -> None:
    proc = cli("demo", "--jobs", "300", "--workers", "2", "--timeout", "90", timeout=110)
    out = ok(proc)
    assert "Conveyor demo summary" in out
    assert "processed" in out
    assert "300" in out
    assert "pickup p99" in out
    assert "demo.export_report" in out  # the job that always fails ended dead
