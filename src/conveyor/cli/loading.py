"""Finding the user's app for a command: ``--app module:attr``, ``--url``, and the store.

Importing the app runs the user's code, so what goes wrong there is the user's to see: a
module that raises shows its own traceback, trimmed of Conveyor's and importlib's frames
(`AppImportFailed`); a Conveyor error raised while importing (a bad cron expression, a
setting) stays one line. Both exit 2, like every other usage error.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from conveyor.errors import ConfigError, ConveyorError

if TYPE_CHECKING:
    from conveyor.app import Conveyor

#: Where the frames above the app's first one come from: Conveyor and the import machinery.
_NOT_THE_APP = (
    str(Path(__file__).resolve().parent.parent) + os.sep,
    str(Path(importlib.__file__).resolve().parent) + os.sep,
    "<frozen ",
)


class AppImportFailed(ConfigError):
    """The app's module raised while being imported; ``details`` is its own traceback."""

    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.details = details


def _app_frames(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` from the first frame of the user's code: the CLI's and importlib's go."""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.startswith(_NOT_THE_APP):
            return tb
        tb = tb.tb_next
    return None


def _import_failed(exc: BaseException, module_name: str, spec: str) -> ConveyorError:
    where = f"importing module {module_name!r} (--app {spec})"
    if isinstance(exc, ConveyorError):
        # Conveyor checked something the app declares (a cron, a setting): its message
        # names the problem, so one line says it, with where it came from.
        return ConfigError(f"{where} failed: {exc}")
    tb = _app_frames(exc.__traceback__)
    details = "".join(traceback.format_exception(type(exc), exc, tb))
    summary = (traceback.format_exception_only(type(exc), exc) or [type(exc).__name__])[-1]
    return AppImportFailed(
        f"{where} failed: {summary.strip()} (your code's traceback is above)", details
    )


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
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise ConfigError(
                f"cannot import module {module_name!r} for --app {spec!r}: it was not found "
                f"in the current directory ({cwd}) or on PYTHONPATH"
            ) from None
        raise _import_failed(exc, module_name, spec) from None
    except Exception as exc:  # noqa: BLE001 - the app's code can raise anything
        raise _import_failed(exc, module_name, spec) from None
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
    checked = checked_url(url)
    app.settings = app.settings.model_copy(update={"conveyor_url": checked})
    app.url = checked


def checked_url(url: str) -> str:
    """``--url`` as the settings take it; a `ConfigError` in one line when it cannot name a
    backend, before the app is imported."""
    from conveyor.settings import load_settings

    check_url(url)
    return load_settings(conveyor_url=url).conveyor_url


def load_app_for_url(spec: str, url: str | None) -> Conveyor:
    """`load_app`, with ``--url`` (when given) as the store of an app built with
    ``Conveyor()``: the environment's choice of store is then not read, so it is not
    warned about while the app is imported. `set_url` still points an app that names its
    own URL in code at ``url``."""
    from conveyor.settings import store_url_given

    with store_url_given(None if url is None else checked_url(url)):
        return load_app(spec)


def check_url(url: str) -> None:
    """Refuse ``--url`` in one line when it cannot name a backend (e.g. port 99999)."""
    from conveyor.settings import url_problem

    problem = url_problem(url)
    if problem is not None:
        raise ConfigError(f"--url: {problem}")


def resolve_app(
    app_spec: str | None, url: str | None, *, need_app: bool = False, create: bool = False
) -> Conveyor:
    """The user's app when ``--app``/``$CONVEYOR_APP`` is given, else a bare app for ``url``.

    Read-only commands need no tasks, so ``--url`` (or ``$CONVEYOR_URL``) is enough. Only
    commands that write jobs or the schema (``create=True``: worker, enqueue, migrate, run)
    may create a missing store; the others open an existing one or say it is missing
    (`never_create`), so a typo or the wrong directory never reports an empty new store.
    A setting skipped because Conveyor cannot use it is a `ConfigError` naming it (exit 2).
    """
    from conveyor.app import Conveyor

    if url is not None:
        check_url(url)
    if app_spec:
        app = load_app_for_url(app_spec, url)
        set_url(app, url)
    elif need_app:
        raise ConfigError(
            "this command needs your app: pass --app module:attribute or set CONVEYOR_APP"
        )
    else:
        app = Conveyor(url)
    # A value the settings skipped (a warning while the app was imported) stops a command
    # here; `conveyor config` uses `load_app` and lists them instead.
    app.settings.raise_problems()
    if not create:
        never_create(app)
    return app


def never_create(app: Conveyor) -> None:
    """Point ``app`` at its store so that opening it never creates one.

    For SQLite that is the URL's ``mode=rw``: the store refuses a missing file (exit 2),
    naming its absolute path. Server stores are never created by opening them.
    """
    if app.url.partition("://")[0].lower() == "sqlite":
        from conveyor.backends.sqlite import existing_only

        app.url = existing_only(app.url)
