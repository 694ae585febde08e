"""The CLI's promises that cover every verb, and `conveyor config`'s settings-file source.

* Every verb that lists or acts takes ``--json``; the verbs that run until stopped (and log
  instead) are named here, so a new verb without ``--json`` fails until it gets one or is
  added to that list with its reason.
* ``conveyor.toml`` is a settings file like ``pyproject.toml``, and wins over it: `conveyor
  config` names it as the source, and ``conveyor worker`` uses its value.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer.main
from tests.integration.cli_support import Run, conveyor_cli

from conveyor.cli import app as cli_app

#: Verbs without ``--json``, and why: each runs until it is stopped and logs as it goes
#: (``LOG_FORMAT=json`` makes each of its lines, the banner too, a JSON object).
RUN_UNTIL_STOPPED = {
    "worker": "runs jobs until stopped; logs",
    "scheduler": "fires schedules until stopped; logs",
    "dashboard": "serves the web dashboard until stopped",
    "demo": "a walkthrough for a person: a progress bar, then a summary",
}


def leaf_commands(command: Any, path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every runnable verb under ``command``, by its words (``"jobs cancel"``).

    Typer builds its commands on its own copy of click, so groups are told by their
    ``commands`` rather than by class."""
    subs = getattr(command, "commands", None)
    if subs:
        found: dict[str, Any] = {}
        for name, sub in subs.items():
            found |= leaf_commands(sub, (*path, name))
        return found
    return {" ".join(path): command}


def takes_json(command: Any) -> bool:
    return any("--json" in param.opts for param in command.params)


def test_every_verb_that_lists_or_acts_answers_in_json() -> None:
    verbs = leaf_commands(typer.main.get_command(cli_app))
    without = {name for name, command in verbs.items() if not takes_json(command)}
    # Then only the verbs that run until stopped go without --json, and each of those exists
    assert without == set(RUN_UNTIL_STOPPED)
    assert len(verbs) > 20  # the walk saw the groups' verbs, not only the top level


@pytest.fixture
def cli(tmp_path: Path) -> Run:
    """``python -m conveyor`` in ``tmp_path``, an app module there, no settings of the
    developer's in the environment."""
    (tmp_path / "tomlapp.py").write_text(
        "from conveyor import Conveyor\n\napp = Conveyor()\n\n\n"
        "@app.task(name='add')\ndef add(a: int, b: int) -> int:\n    return a + b\n"
    )
    ours = ("CONVEYOR_", "WORKER_", "LOG_", "JOB_", "QUEUE_", "SCHEDULER_", "ALERT_", "REDIS_URL")
    base = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    path = os.pathsep.join(p for p in (str(tmp_path), base.get("PYTHONPATH")) if p)
    env = {**base, "PYTHONPATH": path, "CONVEYOR_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    return conveyor_cli(tmp_path, env)


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_conveyor_toml_is_a_source_and_wins_over_pyproject(cli: Run, tmp_path: Path) -> None:
    # Given both settings files, each with a worker concurrency
    (tmp_path / "pyproject.toml").write_text("[tool.conveyor.worker]\nconcurrency = 4\n")
    (tmp_path / "conveyor.toml").write_text("[worker]\nconcurrency = 3\n")

    # When `conveyor config` reports the settings
    report = json.loads(ok(cli("config", "--json")).stdout)
    rows = {row["variable"]: row for row in report["settings"]}

    # Then conveyor.toml's value is used, and named as its source
    assert rows["WORKER_CONCURRENCY"]["value"] == 3
    assert rows["WORKER_CONCURRENCY"]["source"] == "conveyor.toml [worker] concurrency"
    assert (report["problems"], report["notices"]) == ([], [])

    # and the worker, started from the same directory, uses it too
    worker = ok(cli("worker", "--app", "tomlapp:app", "--burst"))
    [banner] = [line for line in worker.stderr.splitlines() if "conveyor worker ·" in line]
    assert "concurrency 3 " in banner, banner


# -- every user mistake: one line, exit 2 -----------------------------------------------------
#: (command, words the one error line must hold). The app module ``tomlapp`` has one task,
#: ``add(a, b)``; the store exists unless the command names another.
MISTAKES = [
    (("worker", "--burst", "--app", "nosuchmodule:app"), "cannot import module 'nosuchmodule'"),
    (("worker", "--burst", "--app", "tomlapp:nothere"), "has no attribute 'nothere'"),
    (("worker", "--burst", "--app", "tomlapp:add"), "is a Task, not a Conveyor app"),
    (("worker", "--burst", "--app", "tomlapp:app", "--loop", "bogus"), "--loop"),
    (("worker", "--burst", "--app", "tomlapp:app", "--log-config", "/no/such.json"), "LOG_CONFIG"),
    (("enqueue", "nosuch", "--app", "tomlapp:app"), "no task named 'nosuch'"),
    (("enqueue", "add", "--app", "tomlapp:app", "--args", "notjson"), "--args is not valid JSON"),
    (("enqueue", "add", "--app", "tomlapp:app", "--args", "[1]"), "missing a required argument"),
    (("enqueue", "add", "--app", "tomlapp:app", "--args", "[1, 2]", "--delay", "-5"), "negative"),
    (("jobs", "list", "--state", "bogus"), "--state 'bogus'"),
    (("status", "--url", "bogus://x"), "unknown backend scheme 'bogus'"),
    (("status", "--url", "redis://127.0.0.1:99999/0"), "port '99999'"),
    (("status", "--url", "sqlite:///elsewhere.db"), "conveyor migrate"),
    (("failed", "retry"), "--all"),
    (("schedule", "list"), "--app"),
    (("export", "nosuchkind", "--app", "tomlapp:app"), "cannot export 'nosuchkind'"),
    (("config", "--app", "nosuchmodule:app"), "cannot import module 'nosuchmodule'"),
    (("queues", "pause", ""), "the queue name is empty"),
    (("queues", "resume", " mail"), "starts or ends with a space"),
    (("queues", "clear", "mail\tx", "--yes"), "control character"),
    # click's own usage errors: one line too, pointing at the command's help
    (("queues", "pause"), "Missing argument 'NAME' (see `conveyor queues pause --help`)"),
    (("status", "--bogus-flag"), "No such option: --bogus-flag"),
    (("jobs", "list", "--limit", "0"), "Invalid value for '--limit'"),
    (("worker", "--concurrency", "many"), "Invalid value for '--concurrency'"),
    (("nosuchverb",), "No such command 'nosuchverb' (see `conveyor --help`)"),
    (("jobs", "nosuch"), "No such command 'nosuch' (see `conveyor jobs --help`)"),
]


@pytest.fixture(scope="module")
def store_cli(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Like `cli`, once for the module, with the store created."""
    where = tmp_path_factory.mktemp("mistakes")
    (where / "tomlapp.py").write_text(
        "from conveyor import Conveyor\n\napp = Conveyor()\n\n\n"
        "@app.task(name='add')\ndef add(a: int, b: int) -> int:\n    return a + b\n"
    )
    ours = ("CONVEYOR_", "WORKER_", "LOG_", "JOB_", "QUEUE_", "SCHEDULER_", "ALERT_", "REDIS_URL")
    base = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    path = os.pathsep.join(p for p in (str(where), base.get("PYTHONPATH")) if p)
    env = {**base, "PYTHONPATH": path, "CONVEYOR_URL": "sqlite:///x.db", "CI": "true"}
    run = conveyor_cli(where, env)
    ok(run("migrate"))
    return run


@pytest.mark.parametrize(("command", "words"), MISTAKES, ids=[" ".join(c) for c, _ in MISTAKES])
def test_a_user_mistake_is_one_line_and_exit_2(
    store_cli: Run, command: tuple[str, ...], words: str
) -> None:
    done = store_cli(*command)
    assert done.returncode == 2, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and words in line, line


def test_a_queue_nobody_uses_is_paused_with_a_warning(store_cli: Run) -> None:
    # Given an app whose only task uses the default queue, and a typo: "mial"
    app = ("--app", "tomlapp:app")
    # When it is paused, it is (a deploy may hold a queue back before its first job) ...
    paused = ok(store_cli("queues", "pause", "mial", *app, "--json"))
    assert json.loads(paused.stdout)["queue"] == "mial"
    # ... with a warning naming the queues this store and app know
    assert "warning: no job in the store, paused queue or task of this app uses queue 'mial'" in (
        paused.stderr
    )
    assert "(known: default)" in paused.stderr
    # Then, being paused, it is known: resuming it is not warned about; the task's queue never is
    assert ok(store_cli("queues", "resume", "mial", *app)).stderr == ""
    assert ok(store_cli("queues", "pause", "default", *app)).stderr == ""
    assert ok(store_cli("queues", "resume", "default", *app)).stderr == ""
    # and a queue that is not paused, known to nobody, is warned about on resume too
    assert "uses queue 'mial'" in ok(store_cli("queues", "resume", "mial")).stderr


@pytest.mark.parametrize("words", [(), ("jobs",)], ids=["conveyor", "conveyor jobs"])
def test_a_group_without_its_verb_still_prints_its_help(
    store_cli: Run, words: tuple[str, ...]
) -> None:
    done = store_cli(*words)
    assert done.returncode == 2
    assert "Usage:" in done.stdout + done.stderr and "error:" not in done.stderr
