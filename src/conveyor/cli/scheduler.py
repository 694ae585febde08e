"""``conveyor scheduler``, ``conveyor schedule list|run``; worker modes for ``conveyor worker``."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.backends.capabilities import Scheduling
from conveyor.cli import common  # common.out is made on first use, not when a worker imports this
from conveyor.cli.common import (
    AppOption,
    JsonOption,
    UrlOption,
    banner,
    handle_errors,
    print_json,
    run_with_backend,
)
from conveyor.cli.loading import resolve_app
from conveyor.cli.typer_app import Cli
from conveyor.cli.worker import LogConfigOption
from conveyor.redaction import display_url
from conveyor.schedule import iso

if TYPE_CHECKING:
    from rich.table import Table

    from conveyor.app import Conveyor
    from conveyor.modes import ModePlan

log = logging.getLogger("conveyor.worker")

schedule_app = Cli(
    help="Cron and periodic entries: `conveyor schedule list`, `conveyor schedule run`.",
    no_args_is_help=True,
)


def apply_mode(app: Conveyor) -> ModePlan:
    """Resolve ``WORKER_MODE`` and narrow the app's worker settings to what the mode serves.

    The `Worker` reads its routing and concurrency from the settings, so the plan is
    written back there; settings the mode ignores are logged once.
    """
    from conveyor.modes import all_async, resolve_mode

    async_only = all_async(app.tasks.values(), app.settings.worker_job_types)
    plan = resolve_mode(app.settings, async_only=async_only)
    for ignored in plan.ignored:
        log.warning("ignoring %s", ignored)
    app.settings = app.settings.model_copy(
        update={
            "worker_queues": plan.routing.queues,
            "worker_priorities": plan.routing.priorities,
            "worker_job_types": plan.routing.tasks,
            "worker_concurrency": max(1, plan.concurrency),
        }
    )
    log.info(
        "worker mode %s: concurrency=%d scheduler=%s",
        plan.mode,
        plan.concurrency,
        "on" if plan.scheduler else "off",
    )
    return plan


def runs_scheduler(app: Conveyor, plan: ModePlan) -> bool:
    """Whether a ``conveyor worker`` of ``plan`` runs the built-in scheduler on its store.

    With schedule entries to fire, a store that cannot record ticks is refused here
    (`Unsupported`, one line), before any worker starts. Without entries the scheduler has
    nothing to do, so a store without `Scheduling` simply gets none.
    """
    if not plan.scheduler:
        return False
    if not app.schedules and not app.backend.supports(Scheduling):
        log.info("no built-in scheduler: no schedule entries, and the store records no ticks")
        return False
    app.backend.require(
        Scheduling, purpose="the worker's built-in scheduler (--no-scheduler turns it off)"
    )
    return True


def run_scheduler_only(app: Conveyor, app_spec: str | None) -> int:
    """Run only a `Scheduler` until SIGTERM or Ctrl-C; returns the exit code."""
    from conveyor.alerts import WaitAlerts
    from conveyor.scheduler import Scheduler

    s = Scheduler(app, handle_signals=True)
    fields = {
        "app": app_spec,
        "url": display_url(app.url),
        "pid": os.getpid(),
        "interval": f"{s.interval:g}s",
        "entries": len(app.schedules),
    }
    banner(app.settings, "scheduler", fields)

    # A wrong ALERT_* setting fails here, before the scheduler starts.
    alerts = WaitAlerts.from_settings(app.backend.clone(), app.clock, app.settings)

    async def go() -> int:
        watcher = None if alerts is None else asyncio.create_task(alerts.run())
        try:
            return await s.run()
        finally:
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            await app.aclose()

    return asyncio.run(go())


@handle_errors
def scheduler(
    app_spec: AppOption = None,
    url: UrlOption = None,
    interval: Annotated[
        float | None,
        typer.Option(help="Seconds between ticks, 0.1 to 60 (SCHEDULER_INTERVAL)."),
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="debug, info, warning, error or critical.")
    ] = "info",
    log_config: LogConfigOption = None,
) -> None:
    """Run a scheduler: enqueue the app's cron and periodic entries, once per tick.

    Run as many as you like: one leads (a lease in the backend), the others stand by and
    take over within a few intervals. SIGTERM or Ctrl-C stops it.
    """
    from conveyor.cli.worker import apply_overrides, check_level, setup_logging

    check_level(log_level)
    app = resolve_app(app_spec, url, need_app=True, create=True)
    apply_overrides(app, scheduler_interval=interval)
    setup_logging(app, log_level, log_config)
    raise typer.Exit(run_scheduler_only(app, app_spec))


@schedule_app.command("list")
@handle_errors
def schedule_list(
    app_spec: AppOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Each cron and periodic entry: schedule, time zone, next run, last run, missed policy."""
    from conveyor.scheduler import entry_rows

    app = resolve_app(app_spec, url, need_app=True)
    rows = run_with_backend(
        app,
        lambda backend: entry_rows(app, backend),
        needs=[Scheduling],
        purpose="`conveyor schedule list` (the last runs are recorded ticks)",
    )
    if as_json:
        print_json(rows)
        return
    if not rows:
        common.out.print("no schedule entries: decorate tasks with @app.cron or @app.periodic")
        return
    common.out.print(_table(rows))


@schedule_app.command("run")
@handle_errors
def schedule_run(
    app_spec: AppOption = None,
    url: UrlOption = None,
    work: Annotated[
        bool,
        typer.Option(
            "--work",
            help="Then run the jobs that are due, as a burst worker, and exit when none "
            "are left (like an event-worker's POST /workers/run).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Fire the schedule entries due now, once, and exit: Laravel's `schedule:run`.

    Run it from the system's cron every minute (`* * * * * conveyor schedule run`) on as many
    hosts as you like: each due tick is enqueued once in all (the store records it). A tick
    up to a minute old is on time; older ones follow each entry's missed policy. Delayed
    jobs need no scheduler: workers take them when they are due.
    """
    from conveyor.scheduler import Fired, Scheduler

    app = resolve_app(app_spec, url, need_app=True, create=True)

    async def fire(_backend: object) -> list[Fired]:
        return await Scheduler(app).fire_due() if app.schedules else []

    fired = run_with_backend(
        app,
        fire,
        needs=[Scheduling] if app.schedules else [],
        purpose="`conveyor schedule run` (it records each fired tick)",
    )
    rows = [{"entry": f.entry, "tick": iso(f.tick), "job_id": f.job_id} for f in fired]
    if as_json:
        print_json({"fired": rows})
    elif not app.schedules:
        common.out.print("no schedule entries: decorate tasks with @app.cron or @app.periodic")
    else:
        for row in rows:
            common.out.print(f"{row['entry']}: tick {row['tick']} enqueued as job {row['job_id']}")
        common.out.print(f"{len(rows)} due tick(s) enqueued")
    if work:
        raise typer.Exit(_burst(app))


def _burst(app: Conveyor) -> int:
    """Run ``app``'s due jobs with a burst worker; its exit code."""
    from conveyor.cli.worker import setup_logging
    from conveyor.cli.worker_setup import resolve_job_types
    from conveyor.worker import Worker

    # Short task names (WORKER_JOB_TYPES=send_email) as `conveyor worker` reads them.
    job_types = resolve_job_types(
        app, app.settings.origin("worker_job_types").name or "WORKER_JOB_TYPES"
    )
    app.settings = app.settings.model_copy(update={"worker_job_types": job_types})
    setup_logging(app, None, None)
    worker = Worker(app, burst=True, handle_signals=True)

    async def go() -> int:
        try:
            return await worker.run()
        finally:
            await app.aclose()

    return asyncio.run(go())


def _table(rows: list[dict[str, Any]]) -> Table:
    # rich's tables load here, not with the module: `conveyor worker` imports this one.
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("name", "schedule", "timezone", "next run (UTC)", "last run (UTC)", "missed"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            escape(r["name"]),
            escape(r["schedule"]),
            r["timezone"],
            _short(r["next_run"]) if r["next_run"] else escape(r["error"] or "-"),
            _short(r["last_run"]) if r["last_run"] else "never",
            r["missed"],
        )
    return table


def _short(iso_time: str) -> str:
    return iso_time.replace("T", " ").replace(".000000Z", "Z")
