"""Settings seen from the real CLI and a real import: ``conveyor config``, the worker's
file settings and their precedence, and an app module that imports whatever the shell holds.

Each test runs ``python`` in a subprocess in its own ``tmp_path`` (the working directory,
where ``.env`` and ``pyproject.toml`` are read), with no ``CONVEYOR_*``, ``WORKER_*`` or
``LOG_*`` variable of the developer's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

APP_SOURCE = """
from conveyor import Conveyor

app = Conveyor()


@app.task(name="add")
def add(a: int, b: int) -> int:
    return a + b
"""

Run = Callable[..., subprocess.CompletedProcess[str]]
_OURS = ("CONVEYOR_", "WORKER_", "LOG_", "JOB_", "QUEUE_", "SCHEDULER_", "ALERT_", "REDIS_URL")


@pytest.fixture
def run(tmp_path: Path) -> Run:
    """Run ``python <args>`` in ``tmp_path`` with ``extra`` variables; text output."""
    (tmp_path / "cfgapp.py").write_text(APP_SOURCE)
    base = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    base["PYTHONPATH"] = os.pathsep.join(p for p in (str(tmp_path), base.get("PYTHONPATH")) if p)
    base["CONVEYOR_URL"] = f"sqlite:///{tmp_path / 'x.db'}"

    def call(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            check=False,
            cwd=tmp_path,
            env={**base, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )

    return call


def test_an_import_survives_the_shells_variables(run: Run, tmp_path: Path) -> None:
    # Given variables meant for other programs, some in the app's own .env
    (tmp_path / ".env").write_text("LOG_FORMAT=console\nJOB_TIMEOUT=30s\n")
    # When the app module is imported, as a web app does
    done = run(
        "-c",
        "import cfgapp; s = cfgapp.app.settings; print(s.log_level, s.log_format, s.job_timeout)",
        LOG_LEVEL="WARN",
        WORKER_CONCURRENCY="many",
    )
    # Then it imports; what Conveyor can read is read, the rest is one warning each
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["warning", "text", "30.0"]
    assert "WORKER_CONCURRENCY='many'" in done.stderr and "Traceback" not in done.stderr


def test_config_shows_each_value_and_where_it_came_from(run: Run, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.conveyor.worker]\nconcurrency = 4\n")
    (tmp_path / ".env").write_text("LOG_LEVEL=TRACE\n")
    done = run(
        "-m",
        "conveyor",
        "config",
        CONVEYOR_URL="redis://:hunter2@cache.internal:6379/0",
        CONVEYOR_LOG_FORMAT="json",
        SENTRY_DSN="https://abcdef@o1.ingest.sentry.io/42",
        CONVEYOR_DASHBOARD_TOKEN="tok-tok-tok-tok",
    )
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines() if line}
    assert lines["WORKER_CONCURRENCY"][:2] == ["4", "pyproject.toml"]
    assert lines["LOG_LEVEL"][:3] == ["debug", ".env", "LOG_LEVEL"]
    assert lines["LOG_FORMAT"] == ["json", "env", "CONVEYOR_LOG_FORMAT"]
    assert lines["MAX_RETRIES"] == ["3", "default"]
    assert lines["CONVEYOR_URL"][0] == "redis://:***@cache.internal:6379/0"
    assert lines["CONVEYOR_DASHBOARD_TOKEN"][0] == "***"
    for secret in ("hunter2", "abcdef", "tok-tok"):
        assert secret not in done.stdout + done.stderr


def test_config_json_and_the_flag_and_code_sources(run: Run, tmp_path: Path) -> None:
    (tmp_path / "coded.py").write_text(
        "from conveyor import Conveyor, Settings\n"
        "app = Conveyor('memory://', settings=Settings(max_retries=7))\n"
    )
    done = run("-m", "conveyor", "config", "--app", "coded:app", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["variable"]: r for r in json.loads(done.stdout)["settings"]}
    assert (rows["CONVEYOR_URL"]["value"], rows["CONVEYOR_URL"]["source"]) == ("memory://", "code")
    assert (rows["MAX_RETRIES"]["value"], rows["MAX_RETRIES"]["source"]) == (7, "code")
    flagged = run("-m", "conveyor", "config", "--url", "memory://", "--json")
    rows = {r["variable"]: r for r in json.loads(flagged.stdout)["settings"]}
    assert rows["CONVEYOR_URL"]["source"] == "CLI --url"


def test_config_lists_what_was_skipped_and_exits_2(run: Run) -> None:
    done = run("-m", "conveyor", "config", "--json", JOB_TIMEOUT="soon", CONVEYOR_URI="x")
    assert done.returncode == 2
    report = json.loads(done.stdout)
    assert any("JOB_TIMEOUT='soon'" in p for p in report["problems"])
    assert any("did you mean CONVEYOR_URL?" in n for n in report["notices"])
    rows = {r["variable"]: r for r in report["settings"]}
    assert rows["JOB_TIMEOUT"]["source"] == "default"


def test_the_worker_reads_the_file_with_one_precedence(run: Run, tmp_path: Path) -> None:
    # Given [tool.conveyor.worker] concurrency = 4, as `conveyor export` reads it
    (tmp_path / "pyproject.toml").write_text("[tool.conveyor.worker]\nconcurrency = 4\n")
    worker = ("-m", "conveyor", "worker", "--app", "cfgapp:app", "--burst")

    def concurrency(*flags: str, **extra: str) -> str:
        done = run(*worker, *flags, **extra)
        assert done.returncode == 0, done.stderr
        return done.stderr.split("concurrency ", 1)[1].split()[0]

    # Then the worker uses it; .env beats the file, the environment .env, a flag everything
    assert concurrency() == "4"
    (tmp_path / ".env").write_text("WORKER_CONCURRENCY=5\n")
    assert concurrency() == "5"
    assert concurrency(WORKER_CONCURRENCY="6") == "6"
    assert concurrency(WORKER_CONCURRENCY="6", CONVEYOR_WORKER_CONCURRENCY="7") == "7"
    assert concurrency("--concurrency", "8", CONVEYOR_WORKER_CONCURRENCY="7") == "8"
