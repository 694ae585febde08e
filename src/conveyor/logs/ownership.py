"""Who sets up a process's logging: the app when it has, else a file, else Conveyor.

``conveyor worker`` imports the user's app, and the app may have set up logging itself
(``logging.basicConfig(...)``, ``dictConfig``, a framework's own set-up). Replacing that
would throw away the user's formats and handlers, so `ensure_logging` decides once, after
the app is imported, in this order:

1. ``LOG_CONFIG=off``: Conveyor leaves logging exactly as it is;
2. ``LOG_CONFIG=path``: the ``logging.config.dictConfig`` in that file (JSON, TOML or
   YAML) is applied;
3. the root logger has handlers Conveyor did not install: the app owns logging, and
   Conveyor's loggers (``conveyor.*``) propagate to those handlers, untouched;
4. otherwise Conveyor installs its channels (`configure_logging`), as it always has.
"""

from __future__ import annotations

import json
import logging.config
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from conveyor.errors import ConfigError
from conveyor.logs.state import configure_logging, foreign_root_handlers, reset_logging

if TYPE_CHECKING:
    from conveyor.settings import Settings

LogSetup = Literal["off", "file", "app", "channels"]
"""What `ensure_logging` did: nothing, a dictConfig file, kept the app's, Conveyor's channels."""

#: The values of ``LOG_CONFIG`` (or ``--log-config``) that mean "leave logging alone".
OFF = frozenset({"off", "none"})


def ensure_logging(settings: Settings, config: str | None = None) -> LogSetup:
    """Set up logging for a process that runs the user's app, unless the app already has.

    ``config`` is ``LOG_CONFIG`` (or the CLI's ``--log-config``): a dictConfig file, or
    ``off``. Without it, Conveyor's channels are installed only when the root logger has no
    handler that someone else put there. Returns which of these happened. A file that
    cannot be read or applied is a `ConfigError` naming it.
    """
    choice = (config or "").strip()
    if choice.lower() in OFF:
        return "off"
    if choice:
        apply_config_file(Path(choice))
        return "file"
    if foreign_root_handlers():
        _note_unused(settings)
        return "app"
    configure_logging(settings)
    return "channels"


#: Settings that only shape Conveyor's own handlers, so the app's logging ignores them.
_CHANNEL_SETTINGS = ("log_channel", "log_stack", "log_format")


def _note_unused(settings: Settings) -> None:
    """Say so when the user set a channel or format that the app's logging makes moot.

    Silence would be worse: ``LOG_CHANNEL=stack`` with a ``sentry`` channel that never
    gets installed is an error report lost without a trace.
    """
    unused = [name.upper() for name in _CHANNEL_SETTINGS if name in settings.model_fields_set]
    if unused:
        logging.getLogger("conveyor").warning(
            "the app set up logging itself (the root logger has handlers), so Conveyor "
            "installs no handler and %s %s not applied; to use Conveyor's channels call "
            "conveyor.logs.configure_logging() in the app, or set LOG_CONFIG to a dictConfig "
            "file (docs/logging.md)",
            ", ".join(unused),
            "is" if len(unused) == 1 else "are",
        )


def apply_config_file(path: Path) -> None:
    """Apply the dictConfig in ``path`` (``.json``, ``.toml``, ``.yaml``/``.yml``).

    ``version`` defaults to 1 and ``disable_existing_loggers`` to false: the stdlib's
    default of true would silence every logger imported before the file is read, which
    includes the app's own and Conveyor's. Handlers `configure_logging` installed before
    are removed first, so they are closed instead of left orphaned.
    """
    config = _read(path)
    config.setdefault("version", 1)
    config.setdefault("disable_existing_loggers", False)
    reset_logging()
    try:
        logging.config.dictConfig(config)
    except (ValueError, TypeError, AttributeError, ImportError) as exc:
        raise ConfigError(
            f"the log config file {path.resolve()} was not applied: {exc}; fix it (see "
            "https://docs.python.org/3/library/logging.config.html#dictionary-schema-details)"
            " or unset LOG_CONFIG to let Conveyor set up logging"
        ) from None


def _read(path: Path) -> dict[str, Any]:
    where = path.resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"the log config file {where} cannot be read ({exc.strerror or exc}): point "
            "LOG_CONFIG (or --log-config) at a logging dictConfig file, or set LOG_CONFIG=off "
            "to leave logging alone"
        ) from None
    try:
        data = _parse(path.suffix.lower(), text)
    except ValueError as exc:
        raise ConfigError(f"the log config file {where} is not valid: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"the log config file {where} holds a {type(data).__name__}, not a dictConfig "
            "mapping (with keys such as version, formatters, handlers, root)"
        )
    return data


def _parse(suffix: str, text: str) -> Any:
    """The file's content; a syntax error is a `ValueError` (JSON's and TOML's are)."""
    if suffix == ".json":
        return json.loads(text)
    if suffix == ".toml":
        return tomllib.loads(text)
    if suffix in (".yaml", ".yml"):
        try:
            import yaml  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise ValueError(
                "reading YAML needs PyYAML (pip install pyyaml), or write the file as .json "
                "or .toml"
            ) from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(str(exc)) from None
    raise ValueError(f"use a .json, .toml or .yaml file (not {suffix or 'no suffix'!r})")
