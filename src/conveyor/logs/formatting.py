"""How a record becomes a line: plain text with ``key=value`` context, or one JSON object.

The context given to ``log.info(message, **context)`` travels on the record as
``conveyor_context`` (a name no other library uses), so lines from other libraries format
the same way, just without context.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from conveyor.worker.metrics import JsonFormatter as _MetricsJsonFormatter

CONTEXT = "conveyor_context"
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


class JsonFormatter(_MetricsJsonFormatter):
    """One JSON object per line: the metrics line's fields, plus context as fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON; context keys never overwrite the base fields."""
        line = super().format(record)
        ctx = context_of(record)
        if not ctx:
            return line
        data: dict[str, Any] = json.loads(line)
        for key, value in ctx.items():
            data.setdefault(key, value)
        return json.dumps(data, default=str)


def formatter_for(fmt: str) -> logging.Formatter:
    """The formatter of ``LOG_FORMAT`` (``text`` or ``json``)."""
    return JsonFormatter() if fmt == "json" else TextFormatter()
