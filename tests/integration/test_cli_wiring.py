"""The CLI wired to the app's logging and to the settings checks, through the real CLI.

* ``conveyor worker`` (and ``scheduler``, ``run``) set up logging after the app is imported,
  so an app's ``logging.basicConfig(...)`` keeps its format; ``--log-config``/``LOG_CONFIG``
  choose a dictConfig file or ``off``.
* A setting skipped while the app was imported (a warning there) stops a command, exit 2.
* ``conveyor schedule list`` shows why an entry has no next run instead of crashing.

Each test writes a tiny app to its ``tmp_path`` and runs ``python -m conveyor`` there on a
SQLite store in that directory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.integration.cli_support import Run, conveyor_cli

from conveyor import Conveyor
from conveyor.errors import ConfigError
from conveyor.settings import ConfigWarning
from conveyor.worker import Worker

TASKS = """
from conveyor import Conveyor

app = Conveyor()


@app.task(name="hello")
def hello() -> None:
    logging.getLogger("shop").info("hello ran")
"""

#: The app sets up logging itself, before Conveyor is imported.
APP_LOGGING = (
    'import logging\nlogging.basicConfig(format="APP %(name)s %(message)s", level="INFO")\n'
)

#: A line in Conveyor's own text format: ``2026-12-07 06:01:08,810 INFO    conveyor.x: ...``.
CONVEYOR_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ +[A-Z]+ +conveyor[.\w]*: ")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: modules in ``tmp_path`` importable, a SQLite store there."""
    (tmp_path / "withlogging.py").write_text(APP_LOGGING + TASKS)
    (tmp_path / "plain.py").write_text("import logging\n" + TASKS)
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CONVEYOR_", "WORKER_", "LOG_", "QUEUE_"))
    }
    path = os.pathsep.join(p for p in (str(tmp_path), base.get("PYTHONPATH")) if p)
    return {
        **base,
        "CONVEYOR_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "PYTHONPATH": path,
        "CI": "true",
        "COLUMNS": "250",
    }


@pytest.fixture
def cli(tmp_path: Path, env: dict[str, str]) -> Run:
    """Run ``python -m conveyor ARGS...`` in ``tmp_path``; ``extra_env`` adds variables."""
    return conveyor_cli(tmp_path, env)


def run_one_job(cli: Run, module: str, *flags: str, **extra_env: str) -> list[str]:
    """Enqueue ``hello``, run ``conveyor worker --burst`` on it; its stderr lines."""
    enqueued = cli("enqueue", "--app", f"{module}:app", "hello")
    assert enqueued.returncode == 0, enqueued.stderr
    done = cli("worker", "--burst", "--app", f"{module}:app", *flags, extra_env=extra_env)
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines()


def logged(lines: list[str]) -> list[str]:
    """The log lines, without the start-up banner (printed, not logged)."""
    return [line for line in lines if not line.startswith("conveyor worker ·")]


# -- the app's logging comes first ------------------------------------------------------------


@pytest.mark.parametrize("flags", [(), ("--log-config", "off")], ids=["default", "off"])
def test_an_app_that_set_up_logging_keeps_its_format_under_the_worker(
    cli: Run, flags: tuple[str, ...]
) -> None:
    # Given an app module that calls logging.basicConfig(format="APP ...") at import
    # When a worker runs one of its jobs
    lines = logged(run_one_job(cli, "withlogging", *flags))

    # Then every line, Conveyor's and the task's, is in the app's format, each once
    assert lines, "the worker logged nothing"
    assert all(line.startswith("APP ") for line in lines), lines
    assert not [line for line in lines if CONVEYOR_LINE.match(line)]
    assert any(line.startswith("APP conveyor.worker ") for line in lines)
    assert any(line.startswith("APP conveyor.job ") and "succeeded" in line for line in lines)
    assert lines.count("APP shop hello ran") == 1


def test_without_the_apps_logging_the_worker_uses_conveyors_format(cli: Run) -> None:
    # Given an app module that does not set up logging
    # When a worker runs one of its jobs
    lines = logged(run_one_job(cli, "plain"))

    # Then Conveyor installs its own handler, as before
    assert any(CONVEYOR_LINE.match(line) and "conveyor.worker:" in line for line in lines)
    assert any(CONVEYOR_LINE.match(line) and "succeeded" in line for line in lines)
    assert not [line for line in lines if line.startswith("APP ")]


def test_log_config_applies_a_dictconfig_file_from_the_environment(
    cli: Run, tmp_path: Path
) -> None:
    # Given LOG_CONFIG naming a dictConfig file, and an app that set up logging itself
    config = {
        "formatters": {"f": {"format": "FILE %(name)s %(message)s"}},
        "handlers": {"h": {"class": "logging.StreamHandler", "formatter": "f"}},
        "root": {"handlers": ["h"], "level": "INFO"},
    }
    (tmp_path / "logging.json").write_text(json.dumps(config))

    # When a worker runs a job
    lines = logged(run_one_job(cli, "withlogging", LOG_CONFIG="logging.json"))

    # Then the file decides: its format, and the app's handler is gone (dictConfig's root)
    assert any(line.startswith("FILE conveyor.worker ") for line in lines), lines
    assert "FILE shop hello ran" in lines
    assert not [line for line in lines if line.startswith("APP ") or CONVEYOR_LINE.match(line)]


@pytest.mark.parametrize(
    "command",
    [["worker", "--burst"], ["scheduler"], ["run"]],
    ids=["worker", "scheduler", "run"],
)
def test_a_missing_log_config_file_stops_each_long_running_command(
    cli: Run, tmp_path: Path, command: list[str]
) -> None:
    # When --log-config names a file that does not exist
    done = cli(*command, "--app", "plain:app", "--log-config", "missing.json", timeout=30)

    # Then the command stops at start-up, in one line naming its absolute path
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert str(tmp_path / "missing.json") in errors[0]


def test_a_bad_log_level_flag_is_refused_before_the_app_is_imported(cli: Run) -> None:
    done = cli("worker", "--burst", "--app", "nosuchmodule:app", "--log-level", "loud")
    assert done.returncode == 2
    assert "--log-level 'loud' is not one of debug, info" in done.stderr
    assert "nosuchmodule" not in done.stderr


# -- a skipped setting stops commands and workers ----------------------------------------------

# ``LOG_LEVEL=verbose`` is read as debug (an alias), so the unusable value is another one.
BAD_LEVEL = {"LOG_LEVEL": "verbose-ish"}


def test_a_skipped_setting_stops_a_command_naming_the_variable(cli: Run) -> None:
    # Given a store, and then a LOG_LEVEL Conveyor cannot read
    assert cli("migrate").returncode == 0

    # When a command runs
    done = cli("status", extra_env=BAD_LEVEL)

    # Then it refuses, exit 2, with one line of the error naming LOG_LEVEL
    assert done.returncode == 2, done.stdout + done.stderr
    error = done.stderr[done.stderr.index("error: invalid Conveyor settings:") :].splitlines()
    assert len(error) == 2, done.stderr
    assert error[1].strip().startswith("LOG_LEVEL='verbose-ish'")
    assert done.stdout == ""


def test_a_skipped_setting_stops_the_worker_but_not_conveyor_config(cli: Run) -> None:
    # The worker command refuses to start
    worker = cli("worker", "--burst", "--app", "plain:app", extra_env=BAD_LEVEL)
    assert worker.returncode == 2
    assert "LOG_LEVEL='verbose-ish'" in worker.stderr

    # `conveyor config` still lists the problem
    config = cli("config", "--app", "plain:app", extra_env=BAD_LEVEL)
    assert "LOG_LEVEL='verbose-ish'" in config.stdout + config.stderr


def test_importing_the_app_with_a_skipped_setting_only_warns(
    env: dict[str, str], tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import plain; print(sorted(plain.app.tasks))"],
        env={**env, **BAD_LEVEL},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['hello']"
    assert "ConfigWarning" in done.stderr and "LOG_LEVEL='verbose-ish'" in done.stderr


def test_a_worker_built_in_code_refuses_an_app_with_a_skipped_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "verbose-ish")
    with pytest.warns(ConfigWarning, match="LOG_LEVEL='verbose-ish'"):
        app = Conveyor("memory://")
    with pytest.raises(ConfigError, match="LOG_LEVEL='verbose-ish'"):
        Worker(app)


# -- schedule list --------------------------------------------------------------------------

BROKEN_SCHEDULE = """
from conveyor import Conveyor

app = Conveyor()


@app.cron("* * * * *", name="good")
def good() -> None: ...


@app.cron("* * * * *", name="broken")
def broken() -> None: ...


# A schedule that passed the checks but has no next time (as one built around them).
app.schedules["broken"].schedule.expression = "0 0 31 2 *"
"""


def test_schedule_list_shows_why_an_entry_has_no_next_run(cli: Run, tmp_path: Path) -> None:
    (tmp_path / "crons.py").write_text(BROKEN_SCHEDULE)
    assert cli("migrate").returncode == 0

    done = cli("schedule", "list", "--app", "crons:app")

    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert "no next run: CroniterBadDateError" in rows["broken"]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", rows["good"]), rows["good"]
