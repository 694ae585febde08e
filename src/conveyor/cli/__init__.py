"""The ``conveyor`` command line: workers, enqueueing, status, jobs and the demo.

Each command lives in its own module; this one only wires them into one Typer app.
Exit codes: 0 ok, 1 not found or nothing done, 2 usage or configuration error,
3 backend unavailable.
"""

from __future__ import annotations

from typing import Annotated

import typer

from conveyor.cli.config import config
from conveyor.cli.dashboard import dashboard
from conveyor.cli.debug import debug_app
from conveyor.cli.demo import demo
from conveyor.cli.enqueue import enqueue
from conveyor.cli.export import export
from conveyor.cli.failed import failed_app
from conveyor.cli.health import health
from conveyor.cli.jobs import jobs_app
from conveyor.cli.migrate import migrate
from conveyor.cli.queues import queues_app
from conveyor.cli.run import run
from conveyor.cli.scheduler import schedule_app, scheduler
from conveyor.cli.status import status, workers
from conveyor.cli.typer_app import Cli
from conveyor.cli.worker import worker

app = Cli(
    name="conveyor",
    help="Conveyor: background jobs with leases and strict priorities.",
    no_args_is_help=True,
    # `conveyor --install-completion` sets up tab completion for bash, zsh, fish or PowerShell.
    add_completion=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("worker")(worker)
app.command("enqueue")(enqueue)
app.command("status")(status)
app.command("workers")(workers)
app.command("health")(health)
app.command("demo")(demo)
app.command("dashboard")(dashboard)
app.command("migrate")(migrate)
app.command("run")(run)
app.command("export")(export)
app.command("config")(config)
app.add_typer(jobs_app, name="jobs")
app.add_typer(failed_app, name="failed")
app.command("scheduler")(scheduler)
app.add_typer(schedule_app, name="schedule")
app.add_typer(queues_app, name="queues")
app.add_typer(debug_app, name="debug")


def _print_version(value: bool) -> None:
    if value:
        from conveyor import __version__

        typer.echo(f"conveyor {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print Conveyor's version and exit.",
        ),
    ] = False,
) -> None:
    """Conveyor: background jobs with leases and strict priorities."""


def main() -> None:
    """Entry point of the ``conveyor`` script and ``python -m conveyor``."""
    app(prog_name="conveyor")


__all__ = ["app", "main"]
