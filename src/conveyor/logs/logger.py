"""``log`` and ``report``: the calls application code makes.

``log.info("sent", user=42)`` goes through the stdlib logger ``conveyor``, so it reaches the
default channel like any other library's record. ``log.channel("slack")`` and
``log.stack("slack", "sentry")`` hand one record to those channels' handlers only.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Literal

from conveyor.logs import state
from conveyor.logs.channels import check_channel
from conveyor.logs.formatting import CONTEXT

Level = Literal["debug", "info", "warning", "error", "critical"]
ExcInfo = (
    bool | BaseException | tuple[type[BaseException], BaseException, TracebackType | None] | None
)

_logger = logging.getLogger("conveyor")


class Log:
    """Log lines with context, to the default channel or to named ones."""

    def __init__(self, channels: tuple[str, ...] = ()) -> None:
        self.channels = channels

    def __repr__(self) -> str:
        return f"<Log {','.join(self.channels) or 'default'}>"

    def channel(self, name: str) -> Log:
        """The same calls, sent only to the channel ``name`` (a `ConfigError` if unknown)."""
        return Log((check_channel(name),))

    def stack(self, *names: str) -> Log:
        """The same calls, sent to each of these channels (a line reaches each once)."""
        if not names:
            raise TypeError("log.stack() needs at least one channel name")
        return Log(tuple(check_channel(n) for n in names))

    def log(
        self, level: int | str, message: str, /, *, exc_info: ExcInfo = None, **context: Any
    ) -> None:
        """Log ``message`` at ``level``; ``context`` becomes fields of the line."""
        levelno = logging.getLevelNamesMapping()[level.upper()] if isinstance(level, str) else level
        extra = {CONTEXT: context} if context else None
        if not self.channels:
            _logger.log(levelno, message, exc_info=exc_info, extra=extra, stacklevel=3)
            return
        channels = state.channels()
        if levelno < channels.level:
            return
        info = _exc_tuple(exc_info)
        record = _logger.makeRecord(
            _logger.name, levelno, "(conveyor.logs)", 0, message, (), info, extra=extra
        )
        for handler in channels.handlers(*self.channels):
            if levelno >= handler.level:
                handler.handle(record)

    def debug(self, message: str, /, **context: Any) -> None:
        """Log at DEBUG."""
        self.log(logging.DEBUG, message, **context)

    def info(self, message: str, /, **context: Any) -> None:
        """Log at INFO."""
        self.log(logging.INFO, message, **context)

    def warning(self, message: str, /, **context: Any) -> None:
        """Log at WARNING."""
        self.log(logging.WARNING, message, **context)

    def error(self, message: str, /, **context: Any) -> None:
        """Log at ERROR."""
        self.log(logging.ERROR, message, **context)

    def critical(self, message: str, /, **context: Any) -> None:
        """Log at CRITICAL."""
        self.log(logging.CRITICAL, message, **context)


def _exc_tuple(
    exc_info: ExcInfo,
) -> tuple[type[BaseException], BaseException, TracebackType | None] | None:
    if isinstance(exc_info, BaseException):
        return type(exc_info), exc_info, exc_info.__traceback__
    if isinstance(exc_info, tuple):
        return exc_info
    if exc_info:
        import sys

        current = sys.exc_info()
        return current if current[1] is not None else None
    return None


log = Log()
"""Log to the default channel: ``log.info("charged", user=42, amount="9.99")``."""


def report(exc: BaseException, *channels: str, level: Level = "error", **context: Any) -> None:
    """Log ``exc`` with its traceback, to the default channel or to ``channels``."""
    target = log.stack(*channels) if channels else log
    target.log(level, f"{type(exc).__name__}: {exc}", exc_info=exc, **context)
