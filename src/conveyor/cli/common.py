"""What every command shares: loading the app, talking to the backend, output, exit codes.

Exit codes: 0 ok, 1 not found or nothing done, 2 usage or configuration error, 3 backend
unavailable. Errors go to stderr as one clean message, never a traceback; with ``--json``
stdout carries exactly one JSON document.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console

from conveyor.errors import (
    BackendError,
    BackendUnavailable,
    ConfigError,
    ConveyorError,
    JobNotFound,
    SchemaVersionError,
    SerializationError,
    UnknownTask,
)
from conveyor.redaction import redact_text

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.backends.base import Backend
    from conveyor.backends.capabilities import Capability

P = ParamSpec("P")
T = TypeVar("T")

EXIT_OK = 0
EXIT_NOTHING = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


def _width(stream: Any) -> int | None:
    # Off a terminal rich falls back to 80 columns, which folds every table; logs and CI
    # output have room for more, unless COLUMNS says otherwise.
    if os.environ.get("COLUMNS") or stream.isatty():
        return None
    return 160


out = Console(width=_width(sys.stdout))
err = Console(stderr=True, width=_width(sys.stderr), soft_wrap=True)

AppOption = Annotated[
    str | None,
    typer.Option(
        "--app",
        "-A",
        envvar="CONVEYOR_APP",
        metavar="MODULE:ATTR",
        help="Your Conveyor app, as module:attribute (default: $CONVEYOR_APP).",
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
        help="Backend URL; wins over the app's own and $CONVEYOR_URL.",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout, for scripts.")
]


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``message`` to stderr and exit with ``code``."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def _code_for(exc: ConveyorError) -> int:
    if isinstance(exc, JobNotFound):
        return EXIT_NOTHING
    if isinstance(exc, (ConfigError, UnknownTask, SerializationError, SchemaVersionError)):
        return EXIT_USAGE
    if isinstance(exc, (BackendUnavailable, BackendError)):
        return EXIT_UNAVAILABLE
    return EXIT_NOTHING


def handle_errors(fn: Callable[P, T]) -> Callable[P, T]:
    """Turn Conveyor errors raised by a command into a clean message and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except ConveyorError as exc:
            # Backends quote the URL they were given; never print its password.
            err.print(f"error: {redact_text(str(exc))}", markup=False, highlight=False)
            raise typer.Exit(_code_for(exc)) from None
        except BrokenPipeError:
            # The reader went away (``conveyor jobs list | head``): stop quietly.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(EXIT_NOTHING) from None
        except OSError as exc:
            err.print(
                f"error: backend unavailable: {redact_text(str(exc))}",
                markup=False,
                highlight=False,
            )
            raise typer.Exit(EXIT_UNAVAILABLE) from None

    return wrapper


def load_app(spec: str) -> Conveyor:
    """Import ``module:attr`` (the current directory first on ``sys.path``) and return the app."""
    from conveyor.app import Conveyor

    module_name, _, attr = spec.partition(":")
    attr = attr or "app"
    if not module_name:
        raise ConfigError(f"--app {spec!r} is not of the form module:attribute, e.g. myapp:app")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise ConfigError(
                f"cannot import module {module_name!r} for --app {spec!r}: it was not found "
                f"in the current directory ({cwd}) or on PYTHONPATH"
            ) from None
        raise
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(
                f"module {module_name!r} has no attribute {attr!r} (from --app {spec!r})"
            ) from None
    if not isinstance(obj, Conveyor):
        raise ConfigError(
            f"--app {spec!r} is a {type(obj).__name__}, not a Conveyor app; point it at the "
            "object made by Conveyor(...)"
        )
    return obj


def set_url(app: Conveyor, url: str | None) -> None:
    """Point ``app`` at ``url`` (before its backend is created)."""
    if url is None:
        return
    from conveyor.settings import load_settings

    check_url(url)
    checked = load_settings(conveyor_url=url)
    app.settings = app.settings.model_copy(update={"conveyor_url": checked.conveyor_url})
    app.url = checked.conveyor_url


def check_url(url: str) -> None:
    """Refuse ``--url`` in one line when it cannot name a backend (e.g. port 99999)."""
    from conveyor.settings import url_problem

    problem = url_problem(url)
    if problem is not None:
        raise ConfigError(f"--url: {problem}")


def resolve_app(app_spec: str | None, url: str | None, *, need_app: bool = False) -> Conveyor:
    """The user's app when ``--app``/``$CONVEYOR_APP`` is given, else a bare app for ``url``.

    Read-only commands need no tasks, so ``--url`` (or ``$CONVEYOR_URL``) is enough.
    """
    from conveyor.app import Conveyor

    if url is not None:
        check_url(url)
    if app_spec:
        app = load_app(app_spec)
        set_url(app, url)
        return app
    if need_app:
        raise ConfigError(
            "this command needs your app: pass --app module:attribute or set CONVEYOR_APP"
        )
    return Conveyor(url)


def run_with_backend(
    app: Conveyor,
    fn: Callable[[Backend], Awaitable[T]],
    *,
    needs: Sequence[type[Capability]] = (),
    purpose: str = "",
) -> T:
    """Open the app's backend, run ``fn`` on it in a fresh event loop, always close it.

    ``needs`` are the capabilities ``fn`` uses: a store without one is refused before it is
    opened, with `Unsupported` (a `ConfigError`: one line, exit 2) naming ``purpose``, the
    command that needs it.
    """
    app.backend.require(*needs, purpose=purpose)

    async def go() -> T:
        try:
            backend = await app.open()
            return await fn(backend)
        finally:
            await app.aclose()

    return asyncio.run(go())


def print_json(data: Any) -> None:
    """Write ``data`` as one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def split_list(value: str | None) -> tuple[str, ...] | None:
    """``"a, b"`` → ``("a", "b")``; empty or missing → ``None``."""
    if value is None:
        return None
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    return items or None


def clip(text: str | None, width: int = 80) -> str:
    """The first line of ``text``, cut to ``width`` characters."""
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"
