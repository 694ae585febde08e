"""How a record becomes a line: plain text with ``key=value`` context, or one JSON object.

The context given to ``log.info(message, **context)`` travels on the record as
``conveyor_context`` (a name no other library uses), so lines from other libraries format
the same way, just without context. The worker's metrics line hands its numbers over as
``metrics`` (`METRICS`): in JSON they become the line's fields.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

CONTEXT = "conveyor_context"
#: The record attribute (``extra={METRICS: fields}``) of a metrics line's fields.
METRICS = "metrics"
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def context_of(record: logging.LogRecord) -> dict[str, Any]:
    """The context fields a record carries (empty for other libraries' records)."""
    ctx = getattr(record, CONTEXT, None)
    return ctx if isinstance(ctx, dict) else {}


def _value(value: Any) -> str:
    text = str(value)
    # Quote what would break `key=value` parsing, so a line stays one record.
    if not text or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text)
    return text


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...``, then the traceback if there is one."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (stdlib name)
        """The line without traceback; context follows the message."""
        line = super().formatMessage(record)
        ctx = context_of(record)
        if ctx:
            line += " " + " ".join(f"{k}={_value(v)}" for k, v in ctx.items())
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, metrics and context fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON; context keys never overwrite the other fields."""
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        metrics = getattr(record, METRICS, None)
        if isinstance(metrics, dict):
            data["message"] = "metrics"
            data.update(metrics)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        for key, value in context_of(record).items():
            data.setdefault(key, value)
        return json.dumps(data, default=str)


def formatter_for(fmt: str) -> logging.Formatter:
    """The formatter of ``LOG_FORMAT`` (``text`` or ``json``)."""
    return JsonFormatter() if fmt == "json" else TextFormatter()
