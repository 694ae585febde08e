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

from conveyor.context import _current

CONTEXT = "conveyor_context"
#: The record attribute (``extra={METRICS: fields}``) of a metrics line's fields.
METRICS = "metrics"
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: Attributes every LogRecord has (``message`` and ``asctime`` once formatted): anything
#: else on a record came from ``extra={...}`` or a filter, and is a field of a JSON line.
STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    CONTEXT,
    METRICS,
}


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


def extra_of(record: logging.LogRecord) -> dict[str, Any]:
    """What ``extra={...}`` (or a filter) added to the record, standard attributes left out."""
    return {k: v for k, v in vars(record).items() if k not in STANDARD_ATTRIBUTES}


def job_fields() -> dict[str, Any]:
    """The running job's fields (empty outside a job), for lines logged by task code."""
    job = _current.get()
    if job is None:
        return {}
    cid = job.headers.get("correlation_id")
    return {
        "job_id": job.id,
        "task": job.task,
        "queue": job.queue,
        "attempt": job.attempt,
        "correlation_id": cid if isinstance(cid, str) and cid else job.id,
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, then the record's fields.

    The fields, in order of precedence: the metrics line's numbers, ``log.info(...,
    **context)``, the stdlib's ``extra={...}``, then the running job's fields. None of
    them replaces ``time``, ``level``, ``logger``, ``message`` or ``exception``. Usable
    from a ``logging.config.dictConfig`` file: ``{"()": "conveyor.logs.JsonFormatter"}``.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (values JSON cannot hold are written as text)."""
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
        for fields in (context_of(record), extra_of(record), job_fields()):
            for key, value in fields.items():
                data.setdefault(key, value)
        return json.dumps(data, default=str)


def formatter_for(fmt: str) -> logging.Formatter:
    """The formatter of ``LOG_FORMAT`` (``text`` or ``json``)."""
    return JsonFormatter() if fmt == "json" else TextFormatter()
