"""Channels by name: each is a list of stdlib handlers, built once from the settings.

``stack`` expands to the channels of ``LOG_STACK``; every other name is one handler. The
root logger gets the handlers of ``LOG_CHANNEL``; ``log.channel(...)`` reaches the others.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from logging.handlers import TimedRotatingFileHandler
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.errors import ConfigError
from conveyor.logs.formatting import formatter_for
from conveyor.settings import LOG_CHANNELS

if TYPE_CHECKING:
    from conveyor.settings import Settings


def _single(s: Settings) -> logging.Handler:
    Path(s.log_path).parent.mkdir(parents=True, exist_ok=True)
    return logging.FileHandler(s.log_path, encoding="utf-8", delay=True)


def _daily(s: Settings) -> logging.Handler:
    Path(s.log_path).parent.mkdir(parents=True, exist_ok=True)
    return TimedRotatingFileHandler(
        s.log_path, when="midnight", backupCount=s.log_days, encoding="utf-8", delay=True
    )


def _stderr(s: Settings) -> logging.Handler:
    return logging.StreamHandler(sys.stderr)


def _slack(s: Settings) -> logging.Handler:
    from conveyor.logs.slack import SlackHandler

    if s.log_slack_webhook_url is None:
        raise ConfigError("the slack log channel needs LOG_SLACK_WEBHOOK_URL")
    handler = SlackHandler(
        s.log_slack_webhook_url.get_secret_value(),
        username=s.log_slack_username,
        emoji=s.log_slack_emoji,
    )
    handler.setLevel(s.log_slack_level.upper())
    return handler


def _sentry(s: Settings) -> logging.Handler:
    from conveyor.logs.sentry import sentry_handler, traces_sample_rate

    dsn = s.sentry_dsn.get_secret_value() if s.sentry_dsn is not None else None
    handler = sentry_handler(dsn, traces_sample_rate=traces_sample_rate())
    handler.setLevel(s.log_sentry_level.upper())
    return handler


def _null(s: Settings) -> logging.Handler:
    return logging.NullHandler()


BUILDERS: dict[str, Callable[[Settings], logging.Handler]] = {
    "single": _single,
    "daily": _daily,
    "stderr": _stderr,
    "slack": _slack,
    "sentry": _sentry,
    "null": _null,
}


def check_channel(name: str) -> str:
    """``name`` if it is a channel, else a `ConfigError` listing the channels there are."""
    if name not in LOG_CHANNELS:
        raise ConfigError(f"{name!r} is not a log channel: use one of {', '.join(LOG_CHANNELS)}")
    return name


class Channels:
    """The handlers of every channel used so far, each built once and shared by stacks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.level = logging.getLevelNamesMapping()[settings.log_level.upper()]
        self._built: dict[str, logging.Handler] = {}

    def handlers(self, *names: str) -> list[logging.Handler]:
        """The distinct handlers of these channels, ``stack`` expanded to ``LOG_STACK``."""
        out: list[logging.Handler] = []
        for name in names:
            check_channel(name)
            leaves = (self.settings.log_stack or ()) if name == "stack" else (name,)
            for leaf in leaves:
                handler = self._handler(leaf)
                if handler not in out:
                    out.append(handler)
        return out

    def _handler(self, name: str) -> logging.Handler:
        if name not in self._built:
            handler = BUILDERS[name](self.settings)
            handler.setFormatter(formatter_for(self.settings.log_format))
            self._built[name] = handler
        return self._built[name]

    def close(self) -> None:
        """Close every handler built (the slack one sends what it has queued first)."""
        for handler in self._built.values():
            handler.close()
        self._built.clear()
