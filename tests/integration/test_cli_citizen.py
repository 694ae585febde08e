"""The CLI as a guest in the user's project: it never creates a store it was only asked to
read, says in one line what a user got wrong (exit 2), shows the app's own traceback when
the app fails to import, and has what users reach for (``--version``, completion, ``--json``
on every verb that acts, ``queues pause|resume|clear``, plain flags in help).

Each test writes a tiny app to its ``tmp_path`` and runs ``python -m conveyor`` there, with
a *relative* ``CONVEYOR_URL=sqlite:///x.db``: the case where the current directory matters.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import typer.main
from tests.integration.cli_support import Run, conveyor_cli
from typer.testing import CliRunner

from conveyor import Conveyor, __version__
from conveyor.cli import app as cli_app

APP_SOURCE = """
from conveyor import Conveyor

app = Conveyor()


@app.task(name="add")
def add(a: int, b: int) -> int:
    return a + b


@app.task(name="mail.send", queue="mail")
def send(to: str = "a@example.com") -> None:
    pass
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: the app module on the path, a relative SQLite URL."""
    (tmp_path / "citizen.py").write_text(APP_SOURCE)
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CONVEYOR_", "WORKER_", "LOG_", "QUEUE_"))
    }
    path = os.pathsep.join(p for p in (str(tmp_path), base.get("PYTHONPATH")) if p)
    return {**base, "CONVEYOR_URL": "sqlite:///x.db", "PYTHONPATH": path, "CI": "true"}


@pytest.fixture
def cli(tmp_path: Path, env: dict[str, str]) -> Run:
    """Run ``python -m conveyor ARGS...`` in ``tmp_path``; ``extra_env`` adds variables."""
    return conveyor_cli(tmp_path, env)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    """stdout of a command that must have succeeded."""
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The only line a failed command wrote: an error, exit 2, never a traceback."""
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: "), line
    return line


# -- read-only verbs never create a store ----------------------------------------------------
READ_ONLY = [
    ("status",),
    ("status", "--json"),
    ("workers",),
    ("health",),
    ("jobs", "list"),
    ("jobs", "show", "0" * 26),
    ("jobs", "cancel", "0" * 26),
    ("failed", "list"),
    ("failed", "retry", "--all"),
    ("failed", "purge", "--yes"),
    ("schedule", "list", "--app", "citizen:app"),
    ("queues", "pause", "mail"),
]


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_read_only_verbs_refuse_a_missing_sqlite_file(
    cli: Run, tmp_path: Path, command: tuple[str, ...]
) -> None:
    # Given a directory without a store, and a relative URL
    # When a command that only reads or repairs jobs runs there
    line = one_error_line(cli(*command))
    # Then it names the absolute path and how to create the store, and creates nothing
    assert str(tmp_path / "x.db") in line
    assert "conveyor migrate" in line
    assert not (tmp_path / "x.db").exists()


def test_a_missing_directory_is_not_created(cli: Run, tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "x.db"
    line = one_error_line(cli("status", "--url", f"sqlite:///{target}"))
    assert str(target) in line
    assert not (tmp_path / "no").exists()


def test_verbs_that_write_still_create_the_store(cli: Run, tmp_path: Path) -> None:
    ok(cli("migrate"))
    assert (tmp_path / "x.db").exists()
    (tmp_path / "x.db").unlink()
    ok(cli("enqueue", "add", "--app", "citizen:app", "--args", "[1, 2]"))
    status = json.loads(ok(cli("status", "--json")))
    assert status["totals"]["ready"] == 1


# -- banners ---------------------------------------------------------------------------------
def test_the_worker_banner_shows_the_absolute_path(cli: Run, tmp_path: Path) -> None:
    worker = cli("worker", "--app", "citizen:app", "--burst")
    assert worker.returncode == 0, worker.stderr
    [banner] = [line for line in worker.stderr.splitlines() if "conveyor worker" in line]
    assert f"sqlite:///{tmp_path / 'x.db'}" in banner


def test_with_json_logs_the_banner_is_a_json_line(cli: Run, tmp_path: Path) -> None:
    # Given LOG_FORMAT=json
    worker = cli("worker", "--app", "citizen:app", "--burst", extra_env={"LOG_FORMAT": "json"})
    assert worker.returncode == 0, worker.stderr
    # Then every line on stderr is JSON, the banner included, with its parts as keys
    records = [json.loads(line) for line in worker.stderr.splitlines() if line.strip()]
    [start] = [r for r in records if r.get("event") == "start"]
    assert start["logger"] == "conveyor.worker"
    assert start["app"] == "citizen:app"
    assert start["url"] == f"sqlite:///{tmp_path / 'x.db'}"
    assert start["burst"] is True
    assert start["message"].startswith("conveyor worker · app citizen:app")


def test_with_json_logs_the_dashboard_speaks_json_too(
    cli: Run, env: dict[str, str], tmp_path: Path
) -> None:
    # Given a store, and the dashboard started with LOG_FORMAT=json
    assert cli("migrate").returncode == 0
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conveyor",
            "dashboard",
            "--app",
            "citizen:app",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env={**env, "LOG_FORMAT": "json"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # When a page is served
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                    assert page.status == 200
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "no dashboard"
                time.sleep(0.2)
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    # Then every line is JSON: the banner with its parts as keys, and uvicorn's own lines
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    [start] = [r for r in records if r.get("event") == "start"]
    assert start["logger"] == "conveyor.dashboard"
    assert start["at"] == f"http://127.0.0.1:{port}/"
    assert any(r["logger"].startswith("uvicorn") for r in records), records


# -- one-line errors, and the app's own traceback --------------------------------------------
def test_an_app_that_fails_to_import_shows_its_own_frames(cli: Run, tmp_path: Path) -> None:
    # Given an app module whose own code raises while it is imported
    (tmp_path / "brokenapp.py").write_text(
        "from conveyor import Conveyor\n\napp = Conveyor()\n\n\n"
        "def settings():\n    return {}['missing_key']\n\n\nSETTINGS = settings()\n"
    )
    proc = cli("enqueue", "add", "--app", "brokenapp:app")
    # Then exit 2, the traceback of the app's code (its file, its line), none of Conveyor's
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" in proc.stderr
    assert "brokenapp.py" in proc.stderr
    assert "return {}['missing_key']" in proc.stderr
    assert "conveyor/cli" not in proc.stderr
    assert "importlib" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: importing module 'brokenapp'")
    assert "KeyError: 'missing_key'" in last


def test_a_missing_dependency_of_the_app_is_the_apps_error(cli: Run, tmp_path: Path) -> None:
    (tmp_path / "needy.py").write_text("import no_such_dependency_xyz\n")
    proc = cli("worker", "--app", "needy:app", "--burst")
    assert proc.returncode == 2, proc.stderr
    assert "needy.py" in proc.stderr
    assert "No module named 'no_such_dependency_xyz'" in proc.stderr.strip().splitlines()[-1]


def test_a_conveyor_error_raised_by_the_app_at_import_is_one_line(cli: Run, tmp_path: Path) -> None:
    # Given an app whose declarations Conveyor refuses at import (as a bad cron is)
    (tmp_path / "badconf.py").write_text(
        "from conveyor.errors import ConfigError\n\n"
        "raise ConfigError(\"cron '0 0 31 2 *' never fires: February has no day 31\")\n"
    )
    for command in (("schedule", "list"), ("worker", "--burst")):
        line = one_error_line(cli(*command, "--app", "badconf:app"))
        assert "importing module 'badconf'" in line
        assert "February has no day 31" in line


def test_schedule_list_with_a_cron_that_never_fires_is_one_line(cli: Run, tmp_path: Path) -> None:
    (tmp_path / "cronapp.py").write_text(
        "from conveyor import Conveyor\n\napp = Conveyor()\n\n\n"
        '@app.cron("0 0 31 2 *")\ndef never() -> None:\n    pass\n'
    )
    line = one_error_line(cli("schedule", "list", "--app", "cronapp:app"))
    assert "'0 0 31 2 *'" in line


NO_REDIS = """
import sys


class NoRedis:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("redis", "hiredis"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoRedis())
"""


def test_a_redis_url_without_the_extra_is_one_line(
    cli: Run, tmp_path: Path, env: dict[str, str]
) -> None:
    # Given redis-py cannot be imported, as when the extra is not installed
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(NO_REDIS)
    extra = {"PYTHONPATH": os.pathsep.join((str(blocker), env["PYTHONPATH"]))}
    url = "redis://127.0.0.1:6399/0"
    commands = [("status",), ("health",), ("worker", "--app", "citizen:app", "--burst")]
    for command in commands:
        # When a command is pointed at redis:// (the worker through CONVEYOR_URL)
        env = {**extra, "CONVEYOR_URL": url}
        # Then one line says which extra to install, exit 2
        line = one_error_line(cli(*command, extra_env=env))
        assert "pip install 'conveyor[redis]'" in line, command


# -- the garbage collector ----------------------------------------------------------------
COLLECTOR_APP = """
import gc
from pathlib import Path

from conveyor import Conveyor

Path("at-import").write_text(str(gc.isenabled()))
app = Conveyor()


@app.task(name="probe")
async def probe() -> None:
    Path("in-job").write_text(str(gc.isenabled()))
"""


def test_a_worker_starts_with_the_collector_held_and_runs_jobs_with_it_on(
    cli: Run, tmp_path: Path
) -> None:
    # Given a queued job whose task records whether the garbage collector is on
    (tmp_path / "collector.py").write_text(COLLECTOR_APP)
    ok(cli("enqueue", "probe", "--app", "collector:app"))
    (tmp_path / "at-import").unlink()
    # When a worker starts, imports the app and runs the job
    ok(cli("worker", "--app", "collector:app", "--burst"))
    # Then start-up ran without collections (its objects live as long as the process), and
    # the job ran with the collector on
    assert (tmp_path / "at-import").read_text() == "False"
    assert (tmp_path / "in-job").read_text() == "True"


@pytest.mark.parametrize("before", [True, False], ids=["on", "off"])
def test_a_worker_that_stops_early_leaves_the_collector_as_it_found_it(before: bool) -> None:
    # Given a process whose collector is on (or turned off by its own code)
    import gc

    if not before:
        gc.disable()
    try:
        # When the worker command fails before it starts (conflicting flags), in process
        result = CliRunner().invoke(cli_app, ["worker", "--once", "--max-jobs", "2"])
        # Then it failed with its one line, and the collector is as it was
        assert result.exit_code == 2 and "--once" in result.output
        assert gc.isenabled() is before
    finally:
        gc.enable()


# -- what users reach for -------------------------------------------------------------------
def test_version(cli: Run) -> None:
    assert ok(cli("--version")).strip() == f"conveyor {__version__}"


def test_shell_completion_is_offered(cli: Run) -> None:
    assert "--install-completion" in ok(cli("--help"))
    script = ok(cli("--show-completion", "bash", extra_env={"SHELL": "/bin/bash"}))
    assert "_CONVEYOR_COMPLETE" in script
    # And what the script asks for completes a command name
    asked = {"_CONVEYOR_COMPLETE": "complete_bash", "COMP_WORDS": "conveyor que", "COMP_CWORD": "1"}
    assert ok(cli(extra_env=asked)).split() == ["queues"]


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, sub in (getattr(group, "commands", None) or {}).items():
        found += _commands(sub, (*path, name))
    return found


@pytest.mark.parametrize(
    "path", _commands(typer.main.get_command(cli_app)), ids=lambda p: " ".join(p) or "conveyor"
)
def test_help_shows_boolean_flags_as_plain_flags(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli_app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output


def test_acting_verbs_answer_in_json(cli: Run) -> None:
    job_id = ok(cli("enqueue", "add", "--app", "citizen:app", "--args", "[1, 2]")).strip()
    cancelled = json.loads(ok(cli("jobs", "cancel", job_id, "--json")))
    assert cancelled == {"id": job_id, "cancelled": True, "state": "cancelled"}
    again = cli("jobs", "cancel", job_id, "--json")
    assert again.returncode == 1
    assert json.loads(again.stdout)["cancelled"] is False
    deleted = json.loads(ok(cli("jobs", "delete", job_id, "--json")))
    assert deleted == {"deleted": [job_id], "errors": []}
    assert json.loads(cli("failed", "retry", "--all", "--json").stdout) == {
        "retried": 0,
        "not_retried": None,
    }
    refused = cli("failed", "purge", "--json")  # CI is set: nobody to ask
    assert refused.returncode == 1
    assert json.loads(refused.stdout) == {"deleted": 0, "pending": 0}
    assert json.loads(ok(cli("failed", "purge", "--yes", "--json"))) == {"deleted": 0}


def test_export_answers_in_json(cli: Run, tmp_path: Path) -> None:
    printed = json.loads(ok(cli("export", "systemd", "--app", "citizen:app", "--json")))
    assert printed["kind"] == "systemd"
    assert printed["files"]
    assert all(f["path"] is None and "conveyor" in f["text"] for f in printed["files"])
    out_dir = tmp_path / "units"
    written = json.loads(
        ok(cli("export", "systemd", "--app", "citizen:app", "--out", str(out_dir), "--json"))
    )
    for f in written["files"]:
        assert Path(f["path"]).read_text() == f["text"]


def _paused(tmp_path: Path) -> list[str]:
    app = Conveyor(f"sqlite:///{tmp_path / 'x.db'}")

    async def read() -> list[str]:
        try:
            backend = await app.open()
            return await backend.admin.paused_queues()
        finally:
            await app.aclose()

    return asyncio.run(read())


def test_queues_pause_resume_and_clear(cli: Run, tmp_path: Path) -> None:
    # Given two waiting mail jobs (one ready, one scheduled) and one default job
    for extra in ([], ["--delay", "600"]):
        ok(cli("enqueue", "mail.send", "--app", "citizen:app", *extra))
    kept = ok(cli("enqueue", "add", "--app", "citizen:app", "--args", "[1, 1]")).strip()

    # Pause and resume do what the dashboard's buttons do
    paused = json.loads(ok(cli("queues", "pause", "mail", "--json")))
    assert paused["action"] == "pause"
    assert paused["queue"] == "mail"
    assert _paused(tmp_path) == ["mail"]
    assert "resumed queue mail" in ok(cli("queues", "resume", "mail"))
    assert _paused(tmp_path) == []

    # Clear asks first: without a terminal it deletes nothing and says how many would go
    refused = cli("queues", "clear", "mail")
    assert refused.returncode == 1
    assert "would delete 2 waiting job(s) of queue mail" in refused.stderr
    cleared = json.loads(ok(cli("queues", "clear", "mail", "--yes", "--json")))
    assert (cleared["action"], cleared["count"]) == ("clear", 2)

    # Then the mail queue is empty, not left paused, and the other queue is untouched
    assert json.loads(ok(cli("jobs", "list", "--queue", "mail", "--json"))) == []
    assert [j["id"] for j in json.loads(ok(cli("jobs", "list", "--json")))] == [kept]
    assert _paused(tmp_path) == []


def test_a_worker_warns_when_its_queues_or_task_names_match_nothing(cli: Run) -> None:
    worker = cli(
        "worker", "--app", "citizen:app", "--burst", "--queues", "mial", "--job-types", "ad"
    )
    assert worker.returncode == 0, worker.stderr
    assert "no task of this app uses queue 'mial' (known: default, mail)" in worker.stderr
    assert "no task of this app is named 'ad' (known: add, mail.send)" in worker.stderr


def test_queue_globs_that_match_a_task_are_not_warned_about(cli: Run) -> None:
    worker = cli("worker", "--app", "citizen:app", "--burst", "--queues", "ma*,default")
    assert worker.returncode == 0, worker.stderr
    assert "no task of this app" not in worker.stderr


# -- the store option behind it ----------------------------------------------------------------
def test_sqlite_mode_rw_opens_only_an_existing_file(tmp_path: Path) -> None:
    from conveyor.backends.sqlite import SqliteBackend, existing_only
    from conveyor.errors import ConfigError

    path = tmp_path / "sub" / "jobs.db"
    url = existing_only(f"sqlite:///{path}?busy_timeout=1000")
    assert url.endswith("?busy_timeout=1000&mode=rw")
    assert existing_only(url) == url  # a URL naming a mode keeps it

    async def open_and_close(url: str) -> None:
        backend = SqliteBackend(url)
        try:
            await backend.open()
        finally:
            await backend.close()

    with pytest.raises(ConfigError, match=r"no Conveyor store at .*jobs\.db"):
        asyncio.run(open_and_close(url))
    assert not path.parent.exists()
    asyncio.run(open_and_close(f"sqlite:///{path}?mode=rwc"))  # the default: creates it
    asyncio.run(open_and_close(url))  # and now it exists, mode=rw opens it
    with pytest.raises(ConfigError, match=r"mode=rw\|rwc"):
        SqliteBackend(f"sqlite:///{path}?mode=ro")
