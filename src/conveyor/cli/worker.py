"""``conveyor worker``: run one worker process for an app."""

from __future__ import annotations

import functools
import gc
import logging
import os
import sys
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

from conveyor.cli.common import (
    AppOption,
    UrlOption,
    banner,
    handle_errors,
    split_list,
)
from conveyor.cli.loading import resolve_app
from conveyor.errors import ConfigError
from conveyor.redaction import display_url

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.logs import LogSetup

P = ParamSpec("P")
T = TypeVar("T")

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

LogConfigOption = Annotated[
    str | None,
    typer.Option(
        "--log-config",
        metavar="FILE|off",
        help="A logging dictConfig file (.json, .toml, .yaml) to apply, or off to leave "
        "logging alone (LOG_CONFIG); default: the app's logging if it set one up, else "
        "LOG_CHANNEL.",
    ),
]


def check_level(level: str | None) -> str | None:
    """``--log-level`` in lower case (``None`` stays ``None``); a `ConfigError` when unknown.

    Only the flag is checked here, before the app is imported: logging itself is set up
    after the import (`setup_logging`), so the app's own set-up is seen.
    """
    if level is None:
        return None
    name = level.strip().lower()
    if name not in LOG_LEVELS:
        raise ConfigError(f"--log-level {level!r} is not one of {', '.join(LOG_LEVELS)}")
    return name


def setup_logging(app: Conveyor, level: str | None, log_config: str | None) -> LogSetup:
    """Set up logging for a command that runs ``app``, once the app is imported.

    ``level`` (``--log-level``) wins over ``LOG_LEVEL``, ``log_config`` (``--log-config``)
    over ``LOG_CONFIG``; an app that set up logging itself keeps it (`ensure_logging`,
    docs/logging.md).
    """
    from conveyor.cli.worker_setup import route_deprecations
    from conveyor.logs import ensure_logging

    name = check_level(level) or app.settings.log_level
    settings = app.settings.model_copy(update={"log_level": name})
    setup = ensure_logging(settings, log_config or app.settings.log_config)
    route_deprecations(settings)  # LOG_DEPRECATIONS_CHANNEL
    return setup


def apply_overrides(app: Conveyor, **overrides: Any) -> None:
    """Check CLI values like the environment's, then let them win over the app's settings."""
    from conveyor.settings import load_settings

    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return
    checked = load_settings(**given)
    app.settings = app.settings.model_copy(update={k: getattr(checked, k) for k in given})


def unmatched_routing(app: Conveyor, where: str = "WORKER_JOB_TYPES") -> list[str]:
    """Warnings for ``--queues`` / ``--job-types`` entries that no task of ``app`` matches.

    Such a worker starts and waits forever (``--queues mial``); jobs can still be sent to
    other queues with ``.options(queue=...)``, so this is a warning, not an error.
    """
    s = app.settings
    queues = sorted({task.queue for task in app.tasks.values()})
    problems = [
        f"no task of this app uses queue {q!r} (known: {', '.join(queues) or 'none'}); "
        "this worker may wait forever"
        for q in s.worker_queues or ()
        if not any(fnmatchcase(known, q) for known in queues)
    ]
    names = sorted(app.tasks)
    problems += [
        f"{where}: no task of this app is named {t!r} (known: {', '.join(names) or 'none'}); "
        "this worker may wait forever"
        for t in s.worker_job_types or ()
        if t not in app.tasks
    ]
    return problems


#: Set while `_collector_held` keeps the garbage collector off (see there).
_held = {"collector": False}


def _collector_held(fn: Callable[P, T]) -> Callable[P, T]:
    """Run ``fn`` with the garbage collector off until `_collector_back` (once start-up's
    objects are frozen), and back on whatever way ``fn`` ends.

    A worker's start-up (imports, the app, its tasks) makes objects that live as long as the
    process: collecting while it runs frees nothing (measured: about 30 ms of CPU per start
    on Redis). A collector its caller turned off stays off: that is the caller's to change.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        if gc.isenabled():
            gc.disable()
            _held["collector"] = True
        try:
            return fn(*args, **kwargs)
        finally:
            _collector_back()

    return wrapper


def _collector_back() -> None:
    """Turn the garbage collector back on if `_collector_held` turned it off."""
    if _held["collector"]:
        _held["collector"] = False
        gc.enable()


@handle_errors
@_collector_held
def worker(
    app_spec: AppOption = None,
    url: UrlOption = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", help="Jobs run at once.")
    ] = None,
    queues: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated queue names or globs to serve, e.g. mail,account-*; "
            "priority orders work across them."
        ),
    ] = None,
    queue: Annotated[
        str | None,
        typer.Option(
            "--queue",
            help="Queues in order, as Laravel's --queue=high,low: always take from the "
            "first one with a ready job (WORKER_QUEUES_ORDERED).",
        ),
    ] = None,
    priorities: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated priorities to serve, e.g. high,normal (numbers too: above 0 "
            "is high, 0 normal, below 0 low)."
        ),
    ] = None,
    job_types: Annotated[
        str | None, typer.Option(help="Comma-separated task names to run (default: all).")
    ] = None,
    burst: Annotated[
        bool, typer.Option("--burst", help="Exit once the served queues are empty.")
    ] = False,
    max_jobs: Annotated[
        int | None, typer.Option(help="Exit (for a restart) after this many jobs.")
    ] = None,
    memory_limit: Annotated[
        int | None,
        typer.Option(
            "--memory-limit", "--memory", help="Exit (for a restart) above this RSS, in MB."
        ),
    ] = None,
    max_time: Annotated[
        float | None, typer.Option(help="Exit (for a restart) after this many seconds.")
    ] = None,
    grace_period: Annotated[
        float | None,
        typer.Option(help="On SIGTERM, seconds to let running jobs finish before release."),
    ] = None,
    tries: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Runs a job gets at most in this worker, first run included (Laravel "
            "--tries; WORKER_TRIES).",
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds a job may run at most in this worker, and the default of jobs "
            "enqueued from it (Laravel --timeout; WORKER_TIMEOUT).",
        ),
    ] = None,
    backoff: Annotated[
        str | None,
        typer.Option(
            help="Retry delay of tasks without their own backoff: seconds, or one per "
            "attempt (1,5,10), as Laravel's --backoff (WORKER_BACKOFF).",
        ),
    ] = None,
    once: Annotated[
        bool,
        typer.Option("--once", help="Run at most one job, then exit (Laravel --once)."),
    ] = False,
    lease_seconds: Annotated[
        float | None, typer.Option(help="Lease length: a dead worker's jobs return after it.")
    ] = None,
    sleep: Annotated[
        float | None, typer.Option(help="Longest idle wait between polls, in seconds.")
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(help="debug, info, warning, error or critical (default: LOG_LEVEL)."),
    ] = None,
    log_config: LogConfigOption = None,
    pool: Annotated[
        str | None,
        typer.Option(
            envvar="CONVEYOR_POOL",
            help="Run as one worker of this pool, with its settings (JOBS_WORKER_QUEUES, "
            "[pools.jobs], ...; flags win); shown in `conveyor status`.",
        ),
    ] = None,
    parent_pid: Annotated[
        int | None,
        typer.Option(help="Stop gracefully when this parent process is gone (supervisors)."),
    ] = None,
    metrics_interval: Annotated[
        float | None,
        typer.Option(help="Seconds between metrics log lines; 0 turns them off."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve Prometheus /metrics and the /livez and /readyz probes on "
            "this port (docs/monitoring.md); default off."
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="Address for --metrics-port; 0.0.0.0 exposes it to the network.")
    ] = "127.0.0.1",
    metrics_refresh: Annotated[
        float,
        typer.Option(
            help="Seconds between the backend reads behind queue-depth metrics and /readyz.",
            min=0.1,
        ),
    ] = 5.0,
    mode: Annotated[
        str | None,
        typer.Option(
            help="WORKER_MODE: thin, default, specialized, job-specialized or "
            "scheduler-only (docs/workers.md)."
        ),
    ] = None,
    scheduler: Annotated[
        bool | None,
        typer.Option(
            "--scheduler/--no-scheduler",
            help="Run the built-in scheduler (ENABLE_SCHEDULER); default per mode.",
        ),
    ] = None,
    loop: Annotated[
        str | None,
        typer.Option(
            help="Event loop: auto (uvloop where it is installed), asyncio or uvloop "
            "(WORKER_LOOP, default auto).",
        ),
    ] = None,
) -> None:
    """Run a worker: claim jobs from the backend and run them until stopped.

    Flags win over environment variables (WORKER_CONCURRENCY, WORKER_QUEUES, ...), which win
    over defaults. SIGTERM or Ctrl-C stops gracefully; a second one stops at once.
    """
    check_level(log_level)
    from conveyor.cli.worker_setup import pool_settings, resolve_job_types
    from conveyor.worker import Worker
    from conveyor.worker.companions import MetricsEndpoint, run_worker
    from conveyor.worker.loops import loop_factory
    from conveyor.worker.loops import run as run_loop

    if loop is not None:
        loop_factory(loop)  # an unknown or missing loop: one line, exit 2, before the app

    if queue is not None and queues is not None:
        raise ConfigError(
            "give --queue (queues in order) or --queues (a filter, by priority), not both"
        )
    if once and max_jobs is not None:
        raise ConfigError("give --once (one job, then exit) or --max-jobs N, not both")
    if once:
        burst, max_jobs = True, 1
    app = resolve_app(app_spec, url, need_app=True, create=True)
    loop_name, _ = loop_factory(
        loop or app.settings.worker_loop, "--loop" if loop else "WORKER_LOOP"
    )
    flags = {
        "worker_concurrency": concurrency,
        "worker_queues": split_list(queue if queue is not None else queues),
        # --queue is in order, --queues a filter, whatever WORKER_QUEUES_ORDERED or the pool say
        "worker_queues_ordered": True if queue is not None else False if queues else None,
        "worker_priorities": split_list(priorities),
        "worker_job_types": split_list(job_types),
        "worker_max_jobs": max_jobs,
        "worker_memory_limit": memory_limit,
        "worker_max_time": max_time,
        "worker_grace_period": grace_period,
        "worker_tries": tries,
        "max_retries": None if tries is None else tries - 1,
        "worker_timeout": timeout,
        "job_timeout": timeout,
        "worker_backoff": backoff,
        "lease_seconds": lease_seconds,
        "worker_sleep": sleep,
        "worker_metrics_interval": metrics_interval,
        "worker_mode": mode,
        "enable_scheduler": scheduler,
    }
    # A supervised worker (--parent-pid) gets its pool's settings as flags already.
    from_pool = pool_settings(pool) if pool is not None and parent_pid is None else {}
    apply_overrides(app, **(from_pool | {k: v for k, v in flags.items() if v is not None}))
    # Where the job types came from, for messages: the flag, the pool, or the variable.
    where = (
        "--job-types"
        if job_types is not None
        else f"the {pool} pool's job_types"
        if "worker_job_types" in from_pool
        else app.settings.origin("worker_job_types").name or "WORKER_JOB_TYPES"
    )
    app.settings = app.settings.model_copy(
        update={"worker_job_types": resolve_job_types(app, where)}
    )
    # The store's handle first: a URL that cannot work (a missing extra) is one line, before
    # anything is logged or started.
    backend = app.backend
    setup_logging(app, log_level, log_config)
    from conveyor.cli.scheduler import apply_mode, run_scheduler_only, runs_scheduler
    from conveyor.scheduler import Scheduler
    from conveyor.worker.needs import require_limits

    for problem in unmatched_routing(app, where):
        logging.getLogger("conveyor.worker").warning(problem)
    plan = apply_mode(app)
    if plan.concurrency == 0:
        _collector_back()  # a scheduler runs for good: it collects as any process does
        raise typer.Exit(run_scheduler_only(app, app_spec))
    beside = Scheduler(app) if runs_scheduler(app, plan) else None
    require_limits(backend, app.tasks.values())  # before the banner: nothing starts
    w = Worker(app, burst=burst, handle_signals=True, pool=pool)
    fields = {
        "app": app_spec,
        "url": display_url(app.url),
        "pid": os.getpid(),
        "concurrency": w.concurrency,
        "queues": list(app.settings.worker_queues or ["*"]),
        "queue_order": "strict" if app.settings.worker_queues_ordered else None,
        "pool": pool,
        "burst": burst,
        "loop": loop_name,
    }
    banner(app.settings, "worker", fields)
    from conveyor.scheduler.beside import with_scheduler

    endpoint = (
        None
        if metrics_port is None
        else MetricsEndpoint(metrics_port, metrics_host, metrics_refresh)
    )
    # What start-up made (modules, the app, its tasks) lives as long as the process: out of
    # the collector's sight, a full collection while jobs run looks at their objects only
    # (tens of milliseconds less per collection; a collection first would cost as much).
    gc.freeze()
    _collector_back()
    code = run_loop(
        with_scheduler(
            run_worker(
                w,
                metrics_interval=app.settings.worker_metrics_interval,
                parent_pid=parent_pid,
                metrics=endpoint,
            ),
            w,
            beside,
        ),
        loop_name,
    )
    if code != 0 or w.counts.abandoned > 0:
        # A sync task's thread may still be running: it overran its timeout (code 3), a
        # forced stop released its job (code 1), or it outlived the grace period (its job
        # left to its lease). Python would wait for it at exit, so leave without waiting.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise typer.Exit(code)
