"""``conveyor --help`` and ``conveyor worker`` import only what they need (issue 13).

The CLI's verbs are a table (`conveyor.cli.VERBS`): a verb's module, and what it imports
(rich tables, the dashboard's server, the exporters, the debug client, ...), is imported only
when that verb runs or shows its own help; the package root loads a public name's module on
its first use. These tests run the real ``python -m conveyor``
in a fresh interpreter and read ``sys.modules`` when it exits; they assert what is loaded,
never how long it took (the timings are in the issue's report).
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from conveyor.cli import VERBS
from conveyor.cli import app as cli_app
from conveyor.cli.typer_app import Cli, LazyGroup, Verb

# `python -m conveyor ARGS` (runpy, as `-m` does), then the loaded modules into a file.
_RUNNER = """
import atexit, json, runpy, sys
report, args = sys.argv[1], sys.argv[2:]

def dump():
    with open(report, "w") as f:
        json.dump(sorted(sys.modules), f)

atexit.register(dump)
sys.argv = ["conveyor", *args]
runpy.run_module("conveyor", run_name="__main__", alter_sys=True)
"""

# Loaded by none of the runs below: each is a verb's own business (or not Conveyor's).
HEAVY = (
    "conveyor.dashboard",
    "conveyor.debug",
    "conveyor.demo",
    "conveyor.supervisor",
    "conveyor.testing",
    "pyinstrument",
    "prometheus_client",
    "rich.progress",
    "starlette",
    "uvicorn",
)
# What typer's help renderer loads: for a help page, never for a running worker (which
# prints its banner without rich).
HELP_RENDERING = ("rich", "typer.rich_utils")

_OURS = ("CONVEYOR_", "WORKER_", "LOG_", "JOB_", "QUEUE_", "SCHEDULER_", "ALERT_", "REDIS_URL")


def conveyor_loads(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``python -m conveyor ARGS`` in ``tmp_path``; the process and the modules it held."""
    report = tmp_path / f"modules-{uuid.uuid4().hex}.json"
    base = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    path = os.pathsep.join(p for p in (str(tmp_path), base.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(report), *args],
        env={**base, "PYTHONPATH": path, "COLUMNS": "200"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert report.exists(), done.stderr
    return done, set(json.loads(report.read_text()))


def _under(modules: set[str], package: str) -> set[str]:
    return {m for m in modules if m == package or m.startswith(package + ".")}


def _cli_modules(loaded: set[str]) -> set[str]:
    return _under(loaded, "conveyor.cli") - {"conveyor.cli", "conveyor.cli.typer_app"}


def test_conveyor_help_lists_every_verb_and_imports_none_of_them(tmp_path: Path) -> None:
    # When `conveyor --help` runs
    done, loaded = conveyor_loads(tmp_path, "--help")
    # Then it lists every verb, with its line of help
    assert done.returncode == 0, done.stderr
    for verb in VERBS:
        assert f" {verb.name} " in done.stdout, verb.name
    assert "Run a worker: claim jobs" in done.stdout
    # And no verb's module (nor what those import) was loaded
    imported = sorted(_cli_modules(loaded))
    assert not imported, f"{imported}: a command is registered in conveyor.cli.VERBS, not imported"
    for package in HEAVY:
        assert not _under(loaded, package), f"conveyor --help loaded {package}"


def test_conveyor_help_loads_no_app_settings_or_store_code(tmp_path: Path) -> None:
    # `import conveyor` loads a public name's module on its first use only
    done, loaded = conveyor_loads(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    for package in ("conveyor.app", "conveyor.settings", "conveyor.backends", "pydantic"):
        assert not _under(loaded, package), f"conveyor --help loaded {package}"


def test_worker_help_imports_the_worker_verb_only(tmp_path: Path) -> None:
    done, loaded = conveyor_loads(tmp_path, "worker", "--help")
    assert done.returncode == 0, done.stderr
    assert "--burst" in done.stdout
    assert "conveyor.cli.worker" in loaded
    # The worker verb's own helpers may load; no other verb does
    others = _cli_modules(loaded) - {
        "conveyor.cli.worker",
        "conveyor.cli.common",
        "conveyor.cli.loading",
    }
    assert not others, sorted(others)
    for package in HEAVY:
        assert not _under(loaded, package), f"conveyor worker --help loaded {package}"


def test_a_worker_run_imports_no_other_verb_and_nothing_heavy(tmp_path: Path) -> None:
    # Given an app with one task and an empty SQLite store
    (tmp_path / "startupapp.py").write_text(
        "from conveyor import Conveyor\n\napp = Conveyor()\n\n\n"
        "@app.task(name='noop')\nasync def noop() -> None:\n    return None\n"
    )
    url = f"sqlite:///{tmp_path / 'startup.db'}"
    # When a worker runs until the queues are empty
    done, loaded = conveyor_loads(
        tmp_path, "worker", "--app", "startupapp:app", "--url", url, "--burst"
    )
    # Then it ran and said so, and loaded the worker's own verb (with the scheduler beside
    # it) only
    assert done.returncode == 0, done.stderr
    assert "conveyor worker · app startupapp:app · sqlite:///" in done.stderr
    assert "conveyor.worker" in loaded
    others = _cli_modules(loaded) - {
        "conveyor.cli.worker",
        "conveyor.cli.worker_setup",
        "conveyor.cli.common",
        "conveyor.cli.loading",
        "conveyor.cli.scheduler",  # worker modes: the scheduler runs beside the worker
    }
    assert not others, sorted(others)
    for package in (*HEAVY, *HELP_RENDERING):
        assert not _under(loaded, package), f"conveyor worker loaded {package}"


def _first_paragraph(command: Any) -> str:
    # What typer's group help shows for a command (rich_utils._make_command_help).
    text = command.short_help or command.help or ""
    return str(inspect.cleandoc(text).split("\n\n")[0].replace("\n", " ").strip())


def test_each_verb_lists_the_first_paragraph_of_its_own_help() -> None:
    group = typer.main.get_command(cli_app)
    # The verbs are the group's commands, in the table's order
    assert list(group.commands)[: len(VERBS)] == [verb.name for verb in VERBS]
    for verb in VERBS:
        # Looking a verb up builds the real command (its options, not a stand-in)
        command = group.commands[verb.name]
        assert command.params or getattr(command, "commands", None), verb.name
        assert verb.help == _first_paragraph(command), f"VERBS help of {verb.name} is stale"


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module on the path holding a command ``hello``; its name, unique to the test."""
    name = f"startup_probe_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        "import typer\n\n\ndef hello(who: str = 'world') -> None:\n"
        '    """Say hello.\n\n    Only when asked."""\n'
        "    typer.echo(f'hello {who}')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def _probe_app(module: str) -> Cli:
    class Probe(LazyGroup):
        verbs = (Verb("hello", f"{module}:hello", "Say hello."),)

    app = Cli(cls=Probe, name="probe", no_args_is_help=True)

    @app.callback()
    def _root() -> None:
        """A probe of lazy verbs."""

    @app.command("eager")
    def eager() -> None:
        """Registered the usual way."""
        typer.echo("eager ran")

    return app


def test_a_lazy_verb_is_imported_when_it_runs_not_when_listed(probe: str) -> None:
    app = _probe_app(probe)
    runner = CliRunner()
    # When the group's help is shown
    listed = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    # Then the verb is listed with its line of help, after it the eager command, and the
    # verb's module is not imported
    assert listed.exit_code == 0, listed.output
    assert "Say hello." in listed.output
    assert listed.output.index("hello") < listed.output.index("eager")
    assert probe not in sys.modules
    # When the verb shows its own help, or runs, it is imported and behaves as registered
    own_help = runner.invoke(app, ["hello", "--help"], env={"COLUMNS": "200"})
    assert own_help.exit_code == 0, own_help.output
    assert "--who" in own_help.output
    assert "Only when asked." in own_help.output
    assert probe in sys.modules
    ran = runner.invoke(app, ["hello", "--who", "you"])
    assert (ran.exit_code, ran.output) == (0, "hello you\n")
    assert runner.invoke(app, ["eager"]).output == "eager ran\n"


def test_an_unknown_verb_or_option_is_still_one_error_line(probe: str) -> None:
    app = _probe_app(probe)
    runner = CliRunner()
    unknown = runner.invoke(app, ["helo"])
    assert unknown.exit_code == 2
    assert unknown.output.strip().splitlines() == [
        "error: No such command 'helo'. Did you mean 'hello'? (see `probe --help`)"
    ]
    assert probe not in sys.modules  # a typo imports nothing
    bad = runner.invoke(app, ["hello", "--whom", "x"])
    assert bad.exit_code == 2
    assert bad.output.strip().startswith("error: No such option: --whom")
