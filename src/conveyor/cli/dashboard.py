"""``conveyor dashboard``: serve the web dashboard with uvicorn."""

from __future__ import annotations

import errno
import socket
from typing import Annotated

import typer

from conveyor.cli.common import (
    EXIT_USAGE,
    AppOption,
    UrlOption,
    err,
    fail,
    handle_errors,
    redact_url,
    resolve_app,
)

#: Host names a loopback-bound dashboard answers to (a guard against DNS rebinding).
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


@handle_errors
def dashboard(
    app_spec: AppOption = None,
    url: UrlOption = None,
    host: Annotated[
        str,
        typer.Option(help="Address to bind. Anything but loopback needs --token or --password."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to bind.")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="CONVEYOR_DASHBOARD_TOKEN",
            show_default=False,
            help="Require this token (bearer header, or typed in at /login).",
        ),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            envvar="CONVEYOR_DASHBOARD_PASSWORD",
            show_default=False,
            help="Require HTTP basic auth: 'user:password' (or a password for user admin).",
        ),
    ] = None,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Show everything, change nothing.")
    ] = False,
    secret_key: Annotated[
        str | None,
        typer.Option(
            envvar="CONVEYOR_DASHBOARD_SECRET",
            show_default=False,
            help="Key that signs cookies (default: random at each start).",
        ),
    ] = None,
    refresh: Annotated[
        float, typer.Option(min=1.0, help="Seconds between the pages' live refreshes.")
    ] = 5.0,
    log_level: Annotated[
        str, typer.Option(help="uvicorn's log level: debug, info, warning, error.")
    ] = "info",
) -> None:
    """Serve the web dashboard: queues, workers, jobs, failures, schedules, live.

    Binds 127.0.0.1 unless --host says otherwise; any other address needs --token or
    --password (prefer their environment variables: they stay out of `ps`). With --app
    the dashboard also shows your cron and periodic entries; --url alone is enough for
    the rest.
    """
    try:
        import uvicorn

        from conveyor.dashboard import create_dashboard
        from conveyor.dashboard.security import is_loopback
    except ImportError as exc:
        fail(
            f"the dashboard needs the 'dashboard' extra ({exc.name} is missing): "
            "pip install 'conveyor[dashboard]'",
            EXIT_USAGE,
        )
    loopback = is_loopback(host)
    if not loopback and not (token or password):
        fail(
            f"--host {host} would expose the dashboard beyond this machine without "
            "authentication: set CONVEYOR_DASHBOARD_TOKEN (or --token) or "
            "CONVEYOR_DASHBOARD_PASSWORD (or --password), or keep --host 127.0.0.1",
            EXIT_USAGE,
        )
    _check_port(host, port)
    app = resolve_app(app_spec, url)
    # Without --app there are no schedule entries to show: hand over only the store, so
    # the scheduled page says how to see them instead of "no entries".
    asgi = create_dashboard(
        app if app_spec else app.backend,
        read_only=read_only,
        token=token,
        basic_auth=password,
        secret_key=secret_key,
        refresh=refresh,
        allowed_hosts=[*LOOPBACK_NAMES, host] if loopback else None,
    )
    shown = f"[{host}]" if ":" in host else host
    mode = "read-only" if read_only else "read-write"
    auth = "token" if token else ("password" if password else "no auth (loopback)")
    err.print(
        f"conveyor dashboard · http://{shown}:{port}/ · {redact_url(app.url)} · {mode} · {auth}",
        markup=False,
        highlight=False,
    )
    uvicorn.run(asgi, host=host, port=port, log_level=log_level, server_header=False)


def _check_port(host: str, port: int) -> None:
    """Fail with exit code 2 when ``host:port`` cannot be bound (in use, bad address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc})"
            fail(f"{host}:{port} {reason}: pick another --port or --host", EXIT_USAGE)
