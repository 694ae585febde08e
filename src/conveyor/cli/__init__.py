"""The ``conveyor`` command line: workers, enqueueing, status, jobs and the demo.

Each command lives in its own module; this one only wires them into one Typer app, as a
table of `Verb`: a command's module (and what it imports) is imported only when that command
runs or shows its own help, so ``conveyor --help`` and ``conveyor worker`` start fast.
Exit codes: 0 ok, 1 not found or nothing done, 2 usage or configuration error,
3 backend unavailable.
"""

from __future__ import annotations

from typing import Annotated

import typer

from conveyor.cli.typer_app import Cli, LazyGroup, Verb

# In the order ``conveyor --help`` lists them. The help is the first paragraph of the
# command's own docstring (or its Typer's help); a test keeps the two equal.
VERBS = (
    Verb(
        "worker",
        "conveyor.cli.worker:worker",
        "Run a worker: claim jobs from the backend and run them until stopped.",
    ),
    Verb(
        "enqueue",
        "conveyor.cli.enqueue:enqueue",
        "Enqueue one job for a registered task and print its id.",
    ),
    Verb(
        "status",
        "conveyor.cli.status:status",
        "Jobs per queue and priority by state, totals, lease counters, live workers, and "
        "warnings about the store's health (e.g. a PostgreSQL transaction holding back "
        "vacuum).",
    ),
    Verb("workers", "conveyor.cli.status:workers", "Live workers from the backend's registry."),
    Verb(
        "health",
        "conveyor.cli.health:health",
        "Exit 0 if the backend is reachable (and ``--worker ID`` is live); a Kubernetes exec "
        "probe. Exit 3 when the backend is unreachable, 1 when the worker is not in the "
        "registry.",
    ),
    Verb(
        "demo",
        "conveyor.cli.demo:demo",
        "Run the example app end to end: no server needed, only a SQLite file.",
    ),
    Verb(
        "dashboard",
        "conveyor.cli.dashboard:dashboard",
        "Serve the web dashboard: queues, workers, jobs, failures, schedules, live.",
    ),
    Verb(
        "migrate",
        "conveyor.cli.migrate:migrate",
        "Create the backend's tables, or upgrade them to this version of Conveyor.",
    ),
    Verb(
        "run",
        "conveyor.cli.run:run",
        "Supervise worker pools: start N processes per pool, replace those that exit (with "
        "back-off when they keep crashing), restart them one by one on SIGHUP, stop "
        "gracefully on SIGTERM. `status`, `stop` and `restart` talk to a running supervisor.",
    ),
    Verb(
        "export",
        "conveyor.cli.export:export",
        "Write the pools as process-manager configs: one program, template unit, service or "
        "Deployment per pool, with its process count and a stop timeout longer than the "
        "worker's grace period. The backend URL is read from the environment, never written, "
        "and a worker without one refuses to start.",
    ),
    Verb(
        "config",
        "conveyor.cli.config:config",
        "Show every setting's effective value and where it came from (flag, code, env, .env, "
        "conveyor.toml/pyproject.toml, default), secrets masked; exit 2 when a value Conveyor "
        "cannot use was skipped.",
    ),
    Verb(
        "scheduler",
        "conveyor.cli.scheduler:scheduler",
        "Run a scheduler: enqueue the app's cron and periodic entries, once per tick.",
    ),
    Verb("jobs", "conveyor.cli.jobs:jobs_app", "Look at, cancel and delete single jobs."),
    Verb(
        "failed",
        "conveyor.cli.failed:failed_app",
        "Dead jobs (out of retries, failed with Fail, or poison pills).",
    ),
    Verb(
        "schedule",
        "conveyor.cli.scheduler:schedule_app",
        "Cron and periodic entries: `conveyor schedule list`, `conveyor schedule run`.",
    ),
    Verb("queues", "conveyor.cli.queues:queues_app", "Pause, resume or clear a queue."),
    Verb(
        "debug",
        "conveyor.cli.debug:debug_app",
        "Look inside a running worker: its stacks, a CPU profile.",
    ),
)


class _Conveyor(LazyGroup):
    verbs = VERBS


app = Cli(
    cls=_Conveyor,
    name="conveyor",
    help="Conveyor: background jobs with leases and strict priorities.",
    no_args_is_help=True,
    # `conveyor --install-completion` sets up tab completion for bash, zsh, fish or PowerShell.
    add_completion=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


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


__all__ = ["VERBS", "app", "main"]
