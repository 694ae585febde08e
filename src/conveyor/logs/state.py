"""The channels in use, and installing the default one on the root logger."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from conveyor.logs.channels import Channels

if TYPE_CHECKING:
    from conveyor.settings import Settings

_lock = threading.Lock()
_current: Channels | None = None
_installed: list[logging.Handler] = []


def channels() -> Channels:
    """The configured channels; built from the environment if nothing was configured."""
    global _current  # noqa: PLW0603 (one set of channels per process, like logging's root)
    with _lock:
        if _current is None:
            from conveyor.settings import load_settings

            _current = Channels(load_settings())
        return _current


def configure_logging(settings: Settings | None = None) -> None:
    """Send every logger's records to ``LOG_CHANNEL`` at ``LOG_LEVEL`` (safe to repeat).

    Replaces the handlers an earlier call installed on the root logger (and closes them);
    handlers installed by anyone else stay. ``None`` reads the settings from the
    environment. An unknown channel or a channel missing its settings is a `ConfigError`.
    """
    global _current
    if settings is None:
        from conveyor.settings import load_settings

        settings = load_settings()
    fresh = Channels(settings)
    handlers = fresh.handlers(settings.log_channel)  # raises before anything is replaced
    root = logging.getLogger()
    with _lock:
        old, _current = _current, fresh
        for handler in _installed:
            root.removeHandler(handler)
        _installed[:] = handlers
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(fresh.level)
    if old is not None:
        old.close()


def foreign_root_handlers() -> list[logging.Handler]:
    """The root logger's handlers that `configure_logging` did not install (the app's)."""
    with _lock:
        return [h for h in logging.getLogger().handlers if h not in _installed]


def reset_logging() -> None:
    """Remove the handlers `configure_logging` installed and close every channel.

    The slack channel sends what it has queued first (within its timeout). Tests call this
    between cases; a program may call it before exiting.
    """
    global _current
    root = logging.getLogger()
    with _lock:
        old, _current = _current, None
        for handler in _installed:
            root.removeHandler(handler)
        _installed.clear()
    if old is not None:
        old.close()
