"""``conveyor debug stacks | profile WORKER``: look inside a running worker from a shell.

They fetch ``/debug/stacks`` and ``/debug/profile`` from the worker's metrics port
(``conveyor worker --metrics-port``; `conveyor.debug`). WORKER is its metrics address
(``127.0.0.1:9184``, ``http://10.0.0.5:9184``, or a bare port on this machine), or a worker
id from ``conveyor workers``: the registry does not record metrics addresses, so an id is
found only for a worker of ``conveyor run --metrics-port`` on this machine, through the port
it published in the run directory. Exit codes: 0 ok, 1 no such worker, 2 refused or a
wrong option, 3 nothing answers at the address.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.common import (
    EXIT_NOTHING,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    AppOption,
    JsonOption,
    UrlOption,
    err,
    fail,
    handle_errors,
    out,
    print_json,
)
from conveyor.cli.loading import resolve_app
from conveyor.cli.typer_app import Cli
from conveyor.debug import TOKEN_ENV

debug_app = Cli(
    help="Look inside a running worker: its stacks, a CPU profile.", no_args_is_help=True
)

WorkerArgument = Annotated[
    str,
    typer.Argument(
        metavar="WORKER",
        help="The worker's metrics address (127.0.0.1:9184, a bare port), or its id from "
        "`conveyor workers` (a worker of `conveyor run --metrics-port` on this machine).",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        envvar=TOKEN_ENV,
        show_default=False,
        help="The worker's debug token, sent as a bearer token.",
    ),
]
RunDirOption = Annotated[
    Path,
    typer.Option(
        "--run-dir", help="The run directory of `conveyor run`, to find a worker id's port."
    ),
]
_ADDRESS = re.compile(r"^(https?://)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})/?$")


@debug_app.command("stacks")
@handle_errors
def stacks(
    worker: WorkerArgument,
    as_json: Annotated[bool, typer.Option("--json", help="The dump as JSON.")] = False,
    token: TokenOption = None,
    app_spec: AppOption = None,
    url: UrlOption = None,
    run_dir: RunDirOption = Path(".conveyor"),
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait.")] = 10.0,
) -> None:
    """Print every thread's stack and every asyncio task's chain of awaits."""
    base = resolve_worker(worker, app_spec, url, run_dir)
    body = fetch(f"{base}/debug/stacks?format={'json' if as_json else 'text'}", token, timeout)
    typer.echo(body.decode(), nl=False)


@debug_app.command("profile")
@handle_errors
def profile(
    worker: WorkerArgument,
    seconds: Annotated[
        float, typer.Option(min=0.1, max=60.0, help="How long to sample, in seconds.")
    ] = 10.0,
    fmt: Annotated[
        str,
        typer.Option("--format", help="html (pyinstrument's page) or speedscope (JSON)."),
    ] = "html",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="File to write (default: profile-<time>.html or .json)."
        ),
    ] = None,
    token: TokenOption = None,
    app_spec: AppOption = None,
    url: UrlOption = None,
    run_dir: RunDirOption = Path(".conveyor"),
    as_json: JsonOption = False,
) -> None:
    """Sample the worker's CPU (every thread) for --seconds and save the profile.

    With --json, what was written is printed as ``{"path", "format", "seconds", "bytes"}``.
    """
    if fmt not in ("html", "speedscope"):
        fail(f"--format {fmt!r} is not known; give html or speedscope")
    base = resolve_worker(worker, app_spec, url, run_dir)
    err.print(f"sampling {base} for {seconds:g}s...", highlight=False)
    body = fetch(f"{base}/debug/profile?seconds={seconds:g}&format={fmt}", token, seconds + 30)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = output or Path(f"profile-{stamp}.{'html' if fmt == 'html' else 'speedscope.json'}")
    path.write_bytes(body)
    if as_json:
        written = {"path": str(path.resolve()), "format": fmt, "seconds": seconds}
        print_json({**written, "bytes": len(body)})
        return
    how = "open it in a browser" if fmt == "html" else "load it into speedscope"
    out.print(f"wrote {path.resolve()} ({len(body):,} bytes): {how}", highlight=False)


def resolve_worker(worker: str, app_spec: str | None, url: str | None, run_dir: Path) -> str:
    """``http://host:port`` of the worker named by an address, a port or an id."""
    if worker.isdigit():
        return f"http://127.0.0.1:{_port(worker)}"
    match = _ADDRESS.match(worker)
    if match:
        scheme, host, port = match.groups()
        return f"{scheme or 'http://'}{host}:{_port(port)}"
    return _by_id(worker, app_spec, url, run_dir)


def _port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        fail(f"port {port} is out of range; give 1 to 65535")
    return port


def _by_id(worker_id: str, app_spec: str | None, url: str | None, run_dir: Path) -> str:
    from conveyor.backends.capabilities import Telemetry

    app = resolve_app(app_spec, url)

    async def read() -> list[tuple[str, str, int]]:
        backend = await app.open()
        try:
            if not backend.supports(Telemetry):
                return []
            return [(w.id, w.host, w.pid) for w in await backend.telemetry.workers()]
        finally:
            await app.aclose()

    live = {wid: (host, pid) for wid, host, pid in asyncio.run(read())}
    if worker_id not in live:
        fail(
            f"no live worker {worker_id!r} in the registry ({len(live)} live; see "
            "`conveyor workers`), and it is not an address: give host:port of its "
            "--metrics-port",
            EXIT_NOTHING,
        )
    host, pid = live[worker_id]
    from conveyor.supervisor.metrics import PORTS_DIR

    port_file = run_dir / PORTS_DIR / str(pid)
    if host != socket.gethostname() or not port_file.is_file():
        fail(
            f"worker {worker_id} (host {host}, pid {pid}) is known, but the registry does not "
            "record metrics addresses, and it is not a worker of `conveyor run "
            f"--metrics-port` here (no {port_file}): give its address, host:port of the "
            "--metrics-port it was started with",
            EXIT_NOTHING,
        )
    return f"http://127.0.0.1:{int(port_file.read_text().strip())}"


def fetch(address: str, token: str | None, timeout: float) -> bytes:
    """GET ``address`` with the bearer token; exit with the server's message if refused."""
    request = urllib.request.Request(address)  # noqa: S310 - http(s) only, by _ADDRESS
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as exc:
        message = exc.read().decode(errors="replace").strip() or exc.reason
        code = EXIT_NOTHING if exc.code == 404 else EXIT_USAGE
        fail(f"{address}: {exc.code} {message}", code)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        fail(
            f"nothing answers at {address} ({reason}): is the worker running with "
            "--metrics-port, and is this its address?",
            EXIT_UNAVAILABLE,
        )
