"""``conveyor run``: the supervisor, and ``status`` / ``stop`` / ``restart`` from another shell.

``conveyor run`` starts the pools ``QUEUE_MULTI_WORKER`` selects; ``conveyor run single``
one pool for every queue; ``conveyor run multi`` every configured pool; ``conveyor run jobs
mail`` the named pools.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from conveyor.cli.common import (
    EXIT_NOTHING,
    AppOption,
    JsonOption,
    UrlOption,
    handle_errors,
    out,
    print_json,
)
from conveyor.cli.loading import checked_url, load_app_for_url, resolve_app, set_url
from conveyor.cli.worker import LogConfigOption, check_level, setup_logging
from conveyor.redaction import redact_url
from conveyor.timefmt import fmt_duration

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.supervisor.rundir import RunDir

CONTROL = ("status", "stop", "restart")

RunDirOption = Annotated[
    Path,
    typer.Option(
        "--run-dir",
        envvar="CONVEYOR_RUN_DIR",
        help="Where the supervisor keeps its lock and state (default .conveyor).",
    ),
]


@handle_errors
def run(
    words: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[single|multi|POOL...|status|stop|restart]",
            help="Pools to start (default: by QUEUE_MULTI_WORKER), or a control command.",
            show_default=False,
        ),
    ] = None,
    app_spec: AppOption = None,
    url: UrlOption = None,
    run_dir: RunDirOption = Path(".conveyor"),
    log_level: Annotated[
        str | None,
        typer.Option(help="debug, info, warning or error (default: $LOG_LEVEL, for workers too)."),
    ] = None,
    log_config: LogConfigOption = None,
    backoff: Annotated[
        float, typer.Option(help="First restart delay after a crash; doubles per crash.")
    ] = 1.0,
    backoff_cap: Annotated[float, typer.Option(help="Longest restart delay, in seconds.")] = 60.0,
    timeout: Annotated[
        float, typer.Option(help="`stop`: seconds to wait for the supervisor to exit.")
    ] = 120.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve /metrics for every pool, /livez and /readyz on this port "
            "(SUPERVISOR_METRICS_PORT; docs/monitoring.md); default off."
        ),
    ] = None,
    metrics_host: Annotated[
        str | None,
        typer.Option(
            help="Address for --metrics-port (SUPERVISOR_METRICS_HOST, default "
            "127.0.0.1); 0.0.0.0 exposes it to the network."
        ),
    ] = None,
    metrics_refresh: Annotated[
        float,
        typer.Option(
            help="Seconds between the backend reads behind queue-depth metrics and /readyz.",
            min=0.1,
        ),
    ] = 5.0,
    as_json: JsonOption = False,
) -> None:
    """Supervise worker pools: start N processes per pool, replace those that exit (with
    back-off when they keep crashing), restart them one by one on SIGHUP, stop gracefully
    on SIGTERM. `status`, `stop` and `restart` talk to a running supervisor.
    """
    from conveyor.supervisor.rundir import RunDir

    words = list(words or [])
    rd = RunDir(run_dir)
    if words and words[0] in CONTROL:
        if len(words) > 1:
            from conveyor.errors import ConfigError

            raise ConfigError(f"`conveyor run {words[0]}` takes no pool names")
        _control(words[0], rd, timeout, as_json)
        return
    endpoint = Endpoint(metrics_port, metrics_host, metrics_refresh)
    log_opts = LogOptions(check_level(log_level), log_config)
    _supervise(words, app_spec, url, rd, log_opts, backoff, backoff_cap, endpoint)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """``--metrics-port``, ``--metrics-host`` and ``--metrics-refresh`` as given."""

    port: int | None
    host: str | None
    refresh: float


@dataclass(frozen=True, slots=True)
class LogOptions:
    """``--log-level`` (checked) and ``--log-config`` as given, for the supervisor and its
    workers."""

    level: str | None
    config: str | None

    def worker_args(self) -> tuple[str, ...]:
        """``--log-config`` for each worker, a file as an absolute path (``--log-level``
        is passed by `worker_command`)."""
        from conveyor.logs.ownership import OFF

        if self.config is None:
            return ()
        choice = self.config.strip()
        if choice and choice.lower() not in OFF:
            choice = str(Path(choice).resolve())
        return ("--log-config", choice)


def _supervise(
    words: list[str],
    app_spec: str | None,
    url: str | None,
    rd: RunDir,
    log_opts: LogOptions,
    backoff: float,
    backoff_cap: float,
    endpoint: Endpoint,
) -> None:
    from conveyor.cli.scheduler import runs_scheduler
    from conveyor.modes import resolve_mode
    from conveyor.supervisor.child import url_env, worker_command
    from conveyor.supervisor.config import load_pools
    from conveyor.supervisor.metrics import WORKER_ARGS, SupervisorMetrics, worker_env
    from conveyor.supervisor.supervisor import Supervisor
    from conveyor.worker.needs import require_limits

    app = app_for_workers(app_spec, url)  # fail here, not in N crash loops
    runs_scheduler(app, resolve_mode(app.settings))  # and so for a store without ticks
    require_limits(app.backend, app.tasks.values())  # or without limits the tasks need
    assert app_spec is not None
    setup_logging(app, log_opts.level, log_opts.config)
    pools = load_pools().resolve(words)
    port = endpoint.port if endpoint.port is not None else app.settings.supervisor_metrics_port
    extra = (*(WORKER_ARGS if port is not None else ()), *log_opts.worker_args())
    env = dict(os.environ) | url_env(url) | (worker_env(rd.path) if port is not None else {})
    sup = Supervisor(
        pools,
        lambda pool: worker_command(pool, app_spec, log_opts.level, extra),
        env,
        rd,
        backoff_base=backoff,
        backoff_cap=backoff_cap,
        info={"app": app_spec, "run_dir": str(rd.path.resolve())},
    )
    if port is not None:
        sup.companion = SupervisorMetrics(
            sup,
            app.backend.clone(),
            port=port,
            host=endpoint.host or app.settings.supervisor_metrics_host,
            refresh=endpoint.refresh,
        )
    raise typer.Exit(sup.run())


def app_for_workers(app_spec: str | None, url: str | None) -> Conveyor:
    """The app `conveyor run` supervises, pointed at ``url`` when given.

    Workers get ``--url`` as ``CONVEYOR_URL`` in their environment, never on their command
    line. An app that names its URL in code (``Conveyor("redis://...")``) does not read
    ``CONVEYOR_URL``, so its workers would silently use another store than the one asked
    for: that is refused with what to change.
    """
    from conveyor.errors import ConfigError

    if url is None or not app_spec:
        return resolve_app(app_spec, url, need_app=True, create=True)
    # An app built with Conveyor() takes --url while it is imported (so what the
    # environment would choose is not read); one that names its URL in code keeps it.
    app = load_app_for_url(app_spec, url)
    if app.url != checked_url(url):
        raise ConfigError(
            f"--url cannot reach the workers of --app {app_spec}: the app names its own "
            f"backend URL ({redact_url(app.url)}) in code, so it ignores CONVEYOR_URL. Build "
            "it with Conveyor() and set CONVEYOR_URL (or drop --url)"
        )
    set_url(app, url)
    app.settings.raise_problems()
    return app


def _control(command: str, rd: RunDir, timeout: float, as_json: bool) -> None:
    if command == "status":
        state = rd.live()
        if as_json:
            print_json({"running": state is not None, **(state or {})})
        elif state is None:
            out.print(f"no supervisor is running in {rd.path}", highlight=False)
        else:
            _print_status(state)
        raise typer.Exit(0 if state is not None else EXIT_NOTHING)
    sig = signal.SIGTERM if command == "stop" else signal.SIGHUP
    state = rd.signal(sig)
    if state is None:
        out.print(f"no supervisor is running in {rd.path}", highlight=False)
        raise typer.Exit(EXIT_NOTHING)
    pid = int(state["pid"])
    if command == "restart":
        out.print(f"supervisor {pid}: rolling restart requested", highlight=False)
        return
    out.print(f"supervisor {pid}: stopping (waiting up to {timeout:g}s)", highlight=False)
    if not rd.wait_gone(pid, timeout):
        from conveyor.errors import ConveyorError

        raise ConveyorError(f"supervisor {pid} still running after {timeout:g}s")
    out.print(f"supervisor {pid}: stopped", highlight=False)


def _print_status(state: dict[str, Any]) -> None:
    now = time.time()
    title = (
        f"supervisor {state['pid']} · app {state.get('app')} · up "
        f"{fmt_duration(now - state['started_at'])}"
        f"{' · rolling restart' if state.get('rolling') else ''}"
        f"{' · stopping' if state.get('stopping') else ''}"
    )
    table = Table(title=title, title_justify="left")
    for name in ("pool", "slot", "pid", "state", "uptime", "restarts", "last exit"):
        table.add_column(name, justify="right" if name in ("slot", "pid", "restarts") else "left")
    for pool in state["pools"]:
        for w in pool["workers"]:
            up = "-" if w["started_at"] is None else fmt_duration(now - w["started_at"])
            table.add_row(
                pool["name"],
                str(w["slot"]),
                str(w["pid"] or "-"),
                w["state"],
                up,
                str(w["restarts"]),
                w["last_exit"] or "-",
            )
    out.print(table)
