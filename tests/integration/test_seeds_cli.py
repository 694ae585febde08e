"""The seeds' commands and variables on the real CLI: ``conveyor worker`` with queue:work's
flags, one pool's worker, short job types, and a Laravel ``.env`` choosing the store.

Each test writes a small app to its ``tmp_path`` and runs ``python -m conveyor`` there on a
SQLite store; the jobs' tasks append what ran to ``ran.txt``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from tests.integration.cli_support import Run, conveyor_cli

APP_SOURCE = """
import asyncio
import warnings
from pathlib import Path

from conveyor import Conveyor

app = Conveyor()


def note(text: str) -> None:
    with Path("ran.txt").open("a") as f:
        f.write(text + "\\n")


@app.task(name="shop.mail.send_email", queue="mail")
def send_email(to: str) -> None:
    note(f"send_email {to}")


@app.task(name="record", queue="jobs")
def record(label: str) -> None:
    note(label)


@app.task(name="always_fails")
def always_fails() -> None:
    note("fails")
    raise RuntimeError("boom")


@app.task(name="naps")
async def naps(seconds: float) -> None:
    await asyncio.sleep(seconds)


@app.task(name="old_style")
def old_style() -> None:
    warnings.warn("old_style() is deprecated", DeprecationWarning, stacklevel=1)
    note("old_style")


@app.task(name="a.ping")
def ping_a() -> None: ...


@app.task(name="b.ping")
def ping_b() -> None: ...
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "seedapp.py").write_text(APP_SOURCE)
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CONVEYOR_", "WORKER_", "LOG_", "QUEUE_", "JOBS_", "MAIL_", "DB_"))
    }
    path = os.pathsep.join(p for p in (str(tmp_path), base.get("PYTHONPATH")) if p)
    return {**base, "CONVEYOR_URL": "sqlite:///x.db", "PYTHONPATH": path}


@pytest.fixture
def cli(tmp_path: Path, env: dict[str, str]) -> Run:
    return conveyor_cli(tmp_path, env)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def enqueue(cli: Run, task: str, *args: object, **options: str) -> str:
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    out = ok(cli("enqueue", task, "--app", "seedapp:app", "--args", json.dumps(args), *flags))
    return out.strip().split()[-1]


def ran(tmp_path: Path) -> list[str]:
    path = tmp_path / "ran.txt"
    return path.read_text().splitlines() if path.exists() else []


def job(cli: Run, job_id: str) -> dict[str, object]:
    shown: dict[str, object] = json.loads(ok(cli("jobs", "show", job_id, "--json")))
    return shown


def test_queue_in_order_and_once(cli: Run, tmp_path: Path) -> None:
    # Given three jobs on `low`, then one on `high`
    for n in range(3):
        enqueue(cli, "record", f"low-{n}", queue="low")
    enqueue(cli, "record", "high", queue="high")
    # When `--queue high,low --once` runs (Laravel: queue:work --queue=high,low --once)
    ok(cli("worker", "--app", "seedapp:app", "--queue", "high,low", "--once"))
    # Then it ran the high job only, and exited
    assert ran(tmp_path) == ["high"]
    ok(cli("worker", "--app", "seedapp:app", "--queue", "high,low", "--once"))
    assert ran(tmp_path) == ["high", "low-0"]


def test_enqueue_takes_a_numeric_priority(cli: Run) -> None:
    # The larger runs first: -5 is low, 10 high (a negative number is a value, not a flag)
    assert job(cli, enqueue(cli, "record", "later", priority="-5"))["priority"] == "low"
    assert job(cli, enqueue(cli, "record", "first", priority="10"))["priority"] == "high"


def test_queues_stays_a_filter_whatever_the_environment_says(cli: Run, tmp_path: Path) -> None:
    enqueue(cli, "record", "low", queue="low")
    enqueue(cli, "record", "high", queue="high")
    extra = {"WORKER_QUEUES_ORDERED": "true"}
    ok(cli("worker", "--app", "seedapp:app", "--queues", "high,low", "--once", extra_env=extra))
    assert ran(tmp_path) == ["low"]


def test_queue_and_queues_together_are_refused(cli: Run) -> None:
    proc = cli("worker", "--app", "seedapp:app", "--queue", "a", "--queues", "b")
    assert proc.returncode == 2
    assert "give --queue (queues in order) or --queues" in proc.stderr
    proc = cli("worker", "--app", "seedapp:app", "--once", "--max-jobs", "5")
    assert proc.returncode == 2
    assert "give --once (one job, then exit) or --max-jobs N, not both" in proc.stderr


def test_tries_backoff_timeout_and_memory(cli: Run, tmp_path: Path) -> None:
    # --tries 1: one run in all, so the failure is the last (MAX_RETRIES would retry)
    tried = enqueue(cli, "always_fails")
    ok(cli("worker", "--app", "seedapp:app", "--burst", "--tries", "1", "--memory", "4096"))
    assert (job(cli, tried)["state"], job(cli, tried)["attempts"]) == ("dead", 1)
    # --backoff 3600: a task without its own backoff waits the worker's before its retry
    backed = enqueue(cli, "always_fails")
    ok(cli("worker", "--app", "seedapp:app", "--burst", "--backoff", "3600"))
    shown = job(cli, backed)
    assert shown["state"] == "scheduled"
    assert float(str(shown["run_at"])) - float(str(shown["updated_at"])) == pytest.approx(3600)
    # --timeout 0.5: a job that runs longer is stopped
    napped = enqueue(cli, "naps", 30)
    ok(cli("worker", "--app", "seedapp:app", "--burst", "--timeout", "0.5", "--tries", "1"))
    shown = job(cli, napped)
    assert shown["state"] == "dead" and "0.5s timeout" in str(shown["last_error"])
    assert ran(tmp_path) == ["fails", "fails"]


def test_one_pools_worker_takes_the_pools_settings(cli: Run, tmp_path: Path) -> None:
    # Given jobs on the jobs queue and one on mail
    enqueue(cli, "record", "j-1")
    enqueue(cli, "record", "j-2")
    enqueue(cli, "shop.mail.send_email", "a@example.com")
    # When one worker of the jobs pool runs with the seed's per-pool variables
    extra = {"JOBS_WORKER_MAX_JOBS": "1", "JOBS_WORKER_QUEUES": "jobs"}
    ok(cli("worker", "--app", "seedapp:app", "--pool", "jobs", extra_env=extra))
    # Then it ran one job of its queue and exited after it
    assert ran(tmp_path) == ["j-1"]


def test_job_types_by_short_name(cli: Run, tmp_path: Path) -> None:
    enqueue(cli, "record", "other")
    enqueue(cli, "shop.mail.send_email", "a@example.com")
    extra = {"WORKER_JOB_TYPES": "send_email"}
    ok(cli("worker", "--app", "seedapp:app", "--burst", extra_env=extra))
    assert ran(tmp_path) == ["send_email a@example.com"]
    # A short name two tasks share is refused, naming the variable and the candidates
    proc = cli("worker", "--app", "seedapp:app", "--burst", extra_env={"WORKER_JOB_TYPES": "ping"})
    assert proc.returncode == 2
    assert "WORKER_JOB_TYPES: 'ping' is the short name of several tasks (a.ping, b.ping)" in (
        proc.stderr
    )


def test_deprecations_go_to_their_channel(cli: Run, tmp_path: Path) -> None:
    enqueue(cli, "old_style")
    extra = {"LOG_DEPRECATIONS_CHANNEL": "single", "LOG_PATH": "deprecations.log"}
    proc = cli("worker", "--app", "seedapp:app", "--burst", extra_env=extra)
    ok(proc)
    assert ran(tmp_path) == ["old_style"]
    logged = (tmp_path / "deprecations.log").read_text()
    assert "DeprecationWarning: old_style() is deprecated" in logged
    assert "old_style() is deprecated" not in proc.stderr


def test_a_laravel_env_chooses_the_store(cli: Run, tmp_path: Path, env: dict[str, str]) -> None:
    del env["CONVEYOR_URL"]
    # Given the .env of a Laravel app on SQLite
    (tmp_path / ".env").write_text(
        "QUEUE_CONNECTION=database\nDB_CONNECTION=sqlite\nDB_DATABASE=laravel.sqlite\n"
    )
    ok(cli("migrate", "--app", "seedapp:app"))
    enqueue(cli, "record", "from-laravel-env")
    ok(cli("worker", "--app", "seedapp:app", "--burst"))
    # Then the jobs went to that database file
    assert (tmp_path / "laravel.sqlite").exists() and not (tmp_path / "conveyor.db").exists()
    assert ran(tmp_path) == ["from-laravel-env"]
    # And a connection Conveyor cannot serve is refused, naming the variables
    (tmp_path / ".env").write_text("QUEUE_CONNECTION=database\nDB_CONNECTION=mysql\n")
    proc = cli("worker", "--app", "seedapp:app", "--burst")
    assert proc.returncode == 2
    assert "QUEUE_CONNECTION='database'" in proc.stderr
    assert "DB_CONNECTION='mysql': Conveyor's database store is PostgreSQL" in proc.stderr
    # While a store given on the command line wins over the .env's choice
    enqueue(cli, "record", "on-the-flag's-store", url="sqlite:///flag.db")
    ok(cli("worker", "--app", "seedapp:app", "--burst", "--url", "sqlite:///flag.db"))
    assert ran(tmp_path) == ["from-laravel-env", "on-the-flag's-store"]
