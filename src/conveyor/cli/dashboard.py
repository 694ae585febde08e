"""``conveyor dashboard``: serve the web dashboard with uvicorn."""

from __future__ import annotations

import errno
import socket
from typing import Annotated, Any

import typer

from conveyor.cli.common import (
    EXIT_USAGE,
    AppOption,
    UrlOption,
    banner,
    err,
    fail,
    handle_errors,
)
from conveyor.cli.loading import resolve_app
from conveyor.cli.worker import setup_logging
from conveyor.redaction import display_url

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
    session_hours: Annotated[
        float,
        typer.Option(
            envvar="CONVEYOR_DASHBOARD_SESSION_HOURS",
            min=0.01,
            help="Hours a token login lasts (the cookie's Max-Age, checked on the server too).",
        ),
    ] = 12.0,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-proxy",
            envvar=["CONVEYOR_DASHBOARD_TRUSTED_PROXIES", "DASHBOARD_TRUSTED_PROXIES"],
            show_default=False,
            help="A TLS-terminating proxy's address or network (repeat, or comma-separate): "
            "its X-Forwarded-Proto and X-Forwarded-For are believed.",
        ),
    ] = None,
    secure_cookies: Annotated[
        bool,
        typer.Option(
            "--secure-cookies",
            envvar="CONVEYOR_DASHBOARD_SECURE_COOKIES",
            help="Mark cookies Secure (HTTPS only) whatever scheme the request shows.",
        ),
    ] = False,
    refresh: Annotated[
        float, typer.Option(min=1.0, help="Seconds between the pages' live refreshes.")
    ] = 5.0,
    log_level: Annotated[
        str, typer.Option(help="uvicorn's log level: debug, info, warning, error.")
    ] = "info",
) -> None:
    """Serve the web dashboard: queues, workers, jobs, failures, schedules, live.

    Binds 127.0.0.1 unless --host says otherwise; any other address needs --token (16+
    characters) or --password (8+; prefer their environment variables: they stay out of
    `ps`). Behind a TLS-terminating proxy, name it with --trusted-proxy. With --app
    the dashboard also shows your cron and periodic entries; --url alone is enough for
    the rest.
    """
    try:
        import uvicorn

        from conveyor.dashboard import create_dashboard
        from conveyor.dashboard.security import (
            GENERATE,
            credentials_problem,
            is_loopback,
            parse_proxies,
        )
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
            "CONVEYOR_DASHBOARD_PASSWORD (or --password), or keep --host 127.0.0.1. "
            f"Make a token with: {GENERATE}",
            EXIT_USAGE,
        )
    # A weak secret is refused on any host: loopback is one SSH tunnel away from public.
    weak = credentials_problem(token or None, password or None)
    if weak is not None:
        fail(f"{weak} (CONVEYOR_DASHBOARD_TOKEN / CONVEYOR_DASHBOARD_PASSWORD)", EXIT_USAGE)
    try:
        proxies = parse_proxies(trusted_proxy or [])
    except ValueError as exc:
        fail(f"--trusted-proxy: {exc}", EXIT_USAGE)
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
        session_max_age=session_hours * 3600,
        trusted_proxies=[str(p) for p in proxies],
        secure_cookies=secure_cookies,
    )
    shown = f"[{host}]" if ":" in host else host
    mode = "read-only" if read_only else "read-write"
    auth = "token" if token else ("password" if password else "no auth (loopback)")
    where = f"http://{shown}:{port}/"
    logging_options: dict[str, Any] = {}
    if app.settings.log_format == "json":
        # One JSON stream, as under `conveyor worker`: the banner is a JSON line, and
        # uvicorn's own lines go to the logging Conveyor (or the app) set up, not to
        # uvicorn's text handlers.
        setup_logging(app, None, None)
        logging_options["log_config"] = None
        banner(
            app.settings,
            "dashboard",
            {"at": where, "store": display_url(app.url), "mode": mode, "auth": auth},
        )
    else:
        err.print(
            f"conveyor dashboard · {where} · {display_url(app.url)} · {mode} · {auth}",
            markup=False,
            highlight=False,
        )
    # The dashboard reads X-Forwarded-* itself, and only from --trusted-proxy: uvicorn's
    # own reading (which trusts 127.0.0.1 by default) is turned off so there is one rule.
    uvicorn.run(
        asgi,
        host=host,
        port=port,
        log_level=log_level,
        server_header=False,
        proxy_headers=False,
        **logging_options,
    )


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
