"""What every command shares: talking to the backend, output, exit codes, asking first.

Finding the app and its store is `loading`.

Exit codes: 0 ok, 1 not found or nothing done, 2 usage or configuration error, 3 backend
unavailable. Errors go to stderr as one clean message, never Conveyor's traceback (an app
that fails to import shows its own, then that message); with ``--json`` stdout carries
exactly one JSON document.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer

from conveyor.cli.loading import AppImportFailed
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
    from rich.console import Console

    from conveyor.app import Conveyor
    from conveyor.backends.base import Backend
    from conveyor.backends.capabilities import Capability
    from conveyor.settings import Settings

    #: The consoles of stdout and stderr, made on first use (`__getattr__`).
    out: Console
    err: Console

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


_consoles: dict[str, Console] = {}


def _console(name: str) -> Console:
    # Made on first use: importing rich costs a worker a tenth of its start-up, and a worker
    # that starts well prints only its banner, which needs no rich.
    if not _consoles:
        from rich.console import Console

        _consoles["out"] = Console(width=_width(sys.stdout))
        _consoles["err"] = Console(stderr=True, width=_width(sys.stderr), soft_wrap=True)
    return _consoles[name]


def __getattr__(name: str) -> Console:
    """``out`` and ``err``: rich consoles on stdout and stderr, made on first use."""
    if name in ("out", "err"):
        return _console(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    _console("err").print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
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
            if isinstance(exc, AppImportFailed):
                sys.stderr.write(exc.details)  # the app's own traceback, then the summary
            # Backends quote the URL they were given; never print its password.
            _console("err").print(f"error: {redact_text(str(exc))}", markup=False, highlight=False)
            raise typer.Exit(_code_for(exc)) from None
        except BrokenPipeError:
            # The reader went away (``conveyor jobs list | head``): stop quietly.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(EXIT_NOTHING) from None
        except OSError as exc:
            _console("err").print(
                f"error: backend unavailable: {redact_text(str(exc))}",
                markup=False,
                highlight=False,
            )
            raise typer.Exit(EXIT_UNAVAILABLE) from None

    return wrapper


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


def banner(settings: Settings, name: str, fields: dict[str, Any]) -> None:
    """The start-up line of a long-running command, in the chosen ``LOG_FORMAT``.

    Text: ``conveyor worker · app x:app · sqlite:////srv/x.db · pid 7 · ...`` (a field
    that is ``None`` or ``False`` is left out, ``True`` shows its name). JSON: one record
    like every other line of the stream (`conveyor.logs.JsonFormatter`), that text as its
    message and each field as a key, so a pipeline reading JSON lines can parse it too.
    """
    shown = {k: v for k, v in fields.items() if v is not None and v is not False}
    text = " · ".join([f"conveyor {name}", *(_part(k, v) for k, v in shown.items())])
    if settings.log_format != "json":
        sys.stderr.write(text + "\n")  # plain text, as rich would print it without markup
        sys.stderr.flush()
        return
    from conveyor.logs import JsonFormatter
    from conveyor.logs.formatting import CONTEXT

    record = logging.makeLogRecord(
        {
            "name": f"conveyor.{name}",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": text,
            CONTEXT: {"event": "start", **shown},  # the line's fields, as log.info(**context)
        }
    )
    sys.stderr.write(JsonFormatter().format(record) + "\n")
    sys.stderr.flush()


def _part(key: str, value: Any) -> str:
    if value is True:
        return key
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    return str(value) if key == "url" else f"{key} {value}"


def interactive() -> bool:
    """Whether a person can answer a question: stdin is a terminal and ``CI`` is not set."""
    return sys.stdin.isatty() and not os.environ.get("CI")


def confirm_deletion(pending: int, what: str, as_json: bool) -> None:
    """Ask before deleting ``pending`` ``what`` (e.g. "dead job(s)"), or stop with exit 1.

    Without a person to ask (no terminal, or ``CI`` set) nothing is deleted: the command
    says how many would go and how to delete them (``--yes``). With ``--json`` that answer
    is the JSON document: ``{"deleted": 0, "pending": N, "error": ...}``.
    """
    if pending == 0:
        if as_json:
            print_json({"deleted": 0, "pending": 0})
        else:
            _console("out").print(f"no {what} to delete", highlight=False)
        raise typer.Exit(EXIT_NOTHING)
    if not interactive():
        message = f"would delete {pending} {what}; re-run with --yes to delete them"
        if as_json:
            print_json({"deleted": 0, "pending": pending, "error": message})
        fail(message, EXIT_NOTHING)
    if not typer.confirm(f"Delete {pending} {what} for good?", err=True):
        raise typer.Exit(EXIT_NOTHING)


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
