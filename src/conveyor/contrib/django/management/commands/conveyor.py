"""``python manage.py conveyor <command> ...``: every ``conveyor`` command, Django set up.

The arguments go to the ``conveyor`` command line unchanged (``manage.py conveyor worker
--queues mail``, ``manage.py conveyor --help``), with ``--app`` set to the project's app
(``conveyor.contrib.django:app``, found through ``CONVEYOR['APP']``). The worker processes
of ``conveyor run`` get the same ``--app``, ``DJANGO_SETTINGS_MODULE`` and a ``PYTHONPATH``
that finds the project, and so set Django up before they import anything of it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from conveyor.contrib.django.project import project_app

#: What ``--app`` names under ``manage.py``: `conveyor.contrib.django.project.project_app`.
PROJECT_APP = "conveyor.contrib.django:app"


class Command(BaseCommand):  # type: ignore[misc]  # Django is untyped
    """Run a ``conveyor`` command for this project."""

    help = "Run a Conveyor command (worker, scheduler, run, status, ...) for this project."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Everything after ``conveyor`` is the Conveyor command line."""
        parser.add_argument("args", nargs=argparse.REMAINDER, help="a conveyor command line")

    def run_from_argv(self, argv: list[str]) -> None:
        """``manage.py conveyor ...``: the rest of the line goes to Conveyor untouched."""
        sys.exit(run(argv[2:], prog=f"{Path(argv[0]).name} {argv[1]}"))

    def handle(self, *args: Any, **options: Any) -> None:
        """``call_command("conveyor", "status")``: raises `CommandError` on a non-zero exit."""
        code = run(list(args), prog="manage.py conveyor")
        if code:
            raise CommandError(f"conveyor {' '.join(args)} exited with code {code}", code)


def run(args: list[str], *, prog: str) -> int:
    """Run the ``conveyor`` command line ``args`` for this project; its exit code."""
    from conveyor.cli import app as cli
    from conveyor.errors import ConveyorError

    if any(a == "--app" or a.startswith("--app=") for a in args):
        sys.stderr.write(
            "error: manage.py conveyor takes the app from settings.CONVEYOR['APP']; "
            "leave out --app\n"
        )
        return 2
    try:
        project_app()  # one line now, not a traceback from inside a command
    except ConveyorError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    os.environ["CONVEYOR_APP"] = PROJECT_APP
    os.environ["PYTHONPATH"] = os.pathsep.join(_project_paths())
    try:
        cli(args=args, prog_name=prog, standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _project_paths() -> list[str]:
    """``PYTHONPATH`` for child processes: where the settings' package is, then the rest."""
    paths: list[str] = []
    module = os.environ.get("DJANGO_SETTINGS_MODULE") or getattr(settings, "SETTINGS_MODULE", None)
    if module:
        spec = importlib.util.find_spec(module.partition(".")[0])
        for location in (spec.submodule_search_locations or []) if spec else []:
            paths.append(str(Path(location).resolve().parent))
    if sys.path and sys.path[0] and Path(sys.path[0]).is_dir():
        paths.append(str(Path(sys.path[0]).resolve()))  # manage.py's directory
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return list(dict.fromkeys(paths))
