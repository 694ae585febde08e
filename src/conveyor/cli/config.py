"""``conveyor config``: every effective setting, where it came from, and what is wrong.

Sources, strongest first: a flag (``--url``), code (``Conveyor(url)``), ``CONVEYOR_<NAME>``
then ``<NAME>`` in the environment and ``.env``, ``conveyor.toml`` / ``pyproject.toml``,
the default (docs/configuration.md). Secrets never show: URLs lose their passwords, a
webhook or DSN shows only its host, a token or password shows as ``***``.

Exit 0 when every value is usable, 2 when some were skipped (each is listed), so a deploy
script can run ``conveyor config`` as a check.
"""

from __future__ import annotations

import warnings
from enum import Enum
from typing import TYPE_CHECKING, Any

import typer
from pydantic import SecretStr
from rich.table import Table
from rich.text import Text

from conveyor.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    AppOption,
    JsonOption,
    UrlOption,
    err,
    handle_errors,
    out,
    print_json,
)
from conveyor.redaction import MASK, is_secret_name, origin, redact_url
from conveyor.settings import ConfigWarning, Settings, load_settings
from conveyor.settings.names import OTHER_CONVEYOR_NAMES, names_of
from conveyor.settings.report import SECRET_FIELDS

if TYPE_CHECKING:
    from collections.abc import Iterator


def shown(field: str, value: Any) -> Any:
    """``value`` as it may be printed: JSON-friendly, secrets masked."""
    if isinstance(value, SecretStr) or field in SECRET_FIELDS:
        secret = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if secret is None else origin(str(secret))
    if field == "conveyor_url" and isinstance(value, str):
        return redact_url(value)
    if isinstance(value, Enum):
        return str(getattr(value, "label", value.name.lower()))
    if isinstance(value, tuple):
        return [shown(field, v) for v in value]
    return value


def rows(settings: Settings, fresh: Settings, url_flag: bool) -> Iterator[dict[str, Any]]:
    """One row per setting: its variable, value and source.

    ``fresh`` is what the environment and files alone give: where ``settings`` differs,
    the app's code (or a flag) set the value.
    """
    for field in Settings.model_fields:
        value = getattr(settings, field)
        source = str(settings.origin(field))
        if field == "conveyor_url" and url_flag:
            source = "CLI --url"
        elif source == "argument" or value != getattr(fresh, field):
            source = "code"
        yield {
            "setting": field,
            "variable": names_of(field)[-1],
            "value": shown(field, value),
            "source": source,
        }


def other_variables(environ: dict[str, str]) -> Iterator[dict[str, Any]]:
    """The ``CONVEYOR_*`` variables CLI options read (``CONVEYOR_APP``, the dashboard's
    token...), when set; secret ones masked."""
    for name in OTHER_CONVEYOR_NAMES:
        if name in environ:
            secret = is_secret_name(name.removeprefix("CONVEYOR_DASHBOARD_"))
            value = MASK if secret or name.endswith("_PASSWORD") else environ[name]
            yield {"setting": None, "variable": name, "value": value, "source": f"env {name}"}


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:g}"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return ",".join(f"{k}={v:g}" for k, v in value.items())
    return str(value)


def _read(app_spec: str | None, url: str | None) -> tuple[Settings, Settings]:
    """The settings to show and what the environment and files alone give."""
    with warnings.catch_warnings():
        # Shown in the report instead of as warnings.
        warnings.simplefilter("ignore", ConfigWarning)
        fresh = load_settings()
        if app_spec:
            from conveyor.cli.loading import load_app

            settings = load_app(app_spec).settings
        else:
            settings = fresh
        if url is not None:  # checked as strictly as every flag
            settings = settings.model_copy(
                update={"conveyor_url": load_settings(conveyor_url=url).conveyor_url}
            )
    return settings, fresh


@handle_errors
def config(app_spec: AppOption = None, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Show every setting's effective value and where it came from (flag, code, env,
    .env, conveyor.toml/pyproject.toml, default), secrets masked; exit 2 when a value
    Conveyor cannot use was skipped.

    With --app, the app's own settings (including what its code sets).
    """
    import os

    settings, fresh = _read(app_spec, url)
    table = [*rows(settings, fresh, url is not None), *other_variables(dict(os.environ))]
    problems, notices = settings.problems(), settings.notices()
    if as_json:
        print_json({"settings": table, "problems": problems, "notices": notices})
    else:
        grid = Table("setting", "value", "from", box=None, pad_edge=False)
        for row in table:
            # Text cells: a value is never read as markup or an emoji code (":boom:").
            grid.add_row(Text(row["variable"]), Text(_text(row["value"])), Text(row["source"]))
        out.print(grid)
        for line in problems:
            err.print(f"problem: {line}", markup=False, highlight=False)
        for line in notices:
            err.print(f"notice: {line}", markup=False, highlight=False)
    raise typer.Exit(EXIT_USAGE if problems else EXIT_OK)
