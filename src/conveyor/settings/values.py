"""The kinds of value a setting holds, each read the way people write it.

Every field of `Settings` is one of these annotated types, so a value is checked the same
way wherever it comes from (a variable, ``.env``, ``pyproject.toml``, a keyword in code)
and one field can be checked alone (`conveyor.settings.sources` does, to skip a bad value
and keep reading). Spellings other programs use are accepted: ``WARN`` and ``TRACE`` for
log levels, ``console`` for text logs, ``500ms``, ``30s``, ``5m``, ``1h`` and ``1d`` for
durations, ``512MB`` for sizes.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, SecretStr

from conveyor.errors import ConfigError
from conveyor.job import Priority
from conveyor.settings.checks import (
    LOG_CHANNELS,
    parse_thresholds,
    url_problem,
    webhook_problem,
)
from conveyor.settings.units import parse_duration, parse_size


def _duration(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


def _hours(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(r"\s*[\d.]+\s*", value):
        return parse_duration(value) / 3600  # "90m": a duration, read as hours
    return value


def _megabytes(value: Any) -> Any:
    return parse_size(value, 1024**2) if _has_unit(value) else value


def _bytes(value: Any) -> Any:
    return parse_size(value, 1) if _has_unit(value) else value


def _has_unit(value: Any) -> bool:
    # A plain number is left to pydantic, whose messages the docs quote.
    return isinstance(value, str) and re.search(r"[a-zA-Z]", value) is not None


#: Seconds; also ``500ms``, ``30s``, ``5m``, ``1h``.
Seconds = Annotated[float, BeforeValidator(_duration)]
#: Hours; a value with a unit (``90m``, ``2d``) is converted.
Hours = Annotated[float, BeforeValidator(_hours)]
#: Megabytes; also ``512MB``, ``1GB``.
Megabytes = Annotated[int, BeforeValidator(_megabytes)]
#: Bytes; also ``512KB``, ``1MB``.
Bytes = Annotated[int, BeforeValidator(_bytes)]

#: Other programs' names for the five levels (``WARN`` in Java and Go, ``TRACE``, ...).
LEVEL_ALIASES = {
    "warn": "warning",
    "trace": "debug",
    "verbose": "debug",
    "fatal": "critical",
    "crit": "critical",
    "err": "error",
    "10": "debug",
    "20": "info",
    "30": "warning",
    "40": "error",
    "50": "critical",
}
#: Other programs' names for the two log formats.
FORMAT_ALIASES = {
    "console": "text",
    "plain": "text",
    "pretty": "text",
    "human": "text",
    "dev": "text",
    "jsonl": "json",
    "ndjson": "json",
}


def _level(value: Any) -> Any:
    if isinstance(value, str):
        name = value.strip().lower()
        return LEVEL_ALIASES.get(name, name)
    return value


def _format(value: Any) -> Any:
    if isinstance(value, str):
        name = value.strip().lower()
        return FORMAT_ALIASES.get(name, name)
    return value


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _lower_or_none(value: Any) -> Any:
    return (value.strip().lower() or None) if isinstance(value, str) else value


def _names(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip()) or None
    return value


def _lower_names(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(v.strip().lower() for v in value.split(",") if v.strip()) or None
    return value


def _priorities(value: Any) -> Any:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if value is None or not value:
        return None
    try:
        return tuple(Priority.parse(v) for v in value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def _mode(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().lower().replace("_", "-") or None
    return value


def _thresholds(value: Any) -> Any:
    return parse_thresholds(value) if isinstance(value, str) else value


def _positive(value: dict[str, float] | None) -> dict[str, float] | None:
    for queue, seconds in (value or {}).items():
        if not seconds > 0 or seconds == float("inf"):
            raise ValueError(f"the threshold of {queue!r} must be a number of seconds > 0")
    return value or None


def _url(value: str) -> str:
    if "://" not in value:
        raise ValueError(
            "a backend URL needs a scheme: memory://, sqlite:///path.db, redis://, postgresql://"
        )
    problem = url_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _webhook(value: SecretStr | None) -> SecretStr | None:
    if value is None or not value.get_secret_value().strip():
        return None  # LOG_SLACK_WEBHOOK_URL= (empty) means unset
    problem = webhook_problem(value.get_secret_value())
    if problem is not None:
        raise ValueError(problem)
    return value


def _channel(value: str | None) -> str | None:
    if value is not None and value not in LOG_CHANNELS:
        raise ValueError(f"{value!r} is not a log channel: use one of {', '.join(LOG_CHANNELS)}")
    return value


def retry_steps(value: Any) -> tuple[float, ...] | None:
    """``"10"``, ``"1,5,10"``, ``10`` or ``[1, 5, 10]`` as a tuple of seconds (``None``: unset);
    a `ValueError` saying what is accepted."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        items = [items]
    steps = []
    for item in items:
        seconds = parse_duration(item) if isinstance(item, str) else item
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError("give seconds, or a comma-separated list of seconds (1,5,10)")
        if not 0 <= seconds < float("inf"):
            raise ValueError(f"a retry delay must be a number of seconds >= 0, not {item!r}")
        steps.append(float(seconds))
    return tuple(steps) or None


WorkerMode = Literal["thin", "default", "specialized", "job-specialized", "scheduler-only"]
Mode = Annotated[WorkerMode | None, BeforeValidator(_mode)]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
Level = Annotated[LogLevel, BeforeValidator(_level)]
LogFormat = Annotated[Literal["text", "json"], BeforeValidator(_format)]
Lower = Annotated[str, BeforeValidator(_lower)]
LowerOrNone = Annotated[str | None, BeforeValidator(_lower_or_none)]
CommaList = Annotated[tuple[str, ...] | None, BeforeValidator(_names)]
ChannelList = Annotated[tuple[str, ...] | None, BeforeValidator(_lower_names)]
PriorityList = Annotated[tuple[Priority, ...] | None, BeforeValidator(_priorities)]
# Queue name or glob -> seconds, from "mail=60,reports-*=600" (ALERT_WAIT_QUEUES).
WaitThresholds = Annotated[
    dict[str, float] | None, BeforeValidator(_thresholds), AfterValidator(_positive)
]
BackendUrl = Annotated[str, AfterValidator(_url)]
#: A log channel's name, or ``None``.
Channel = Annotated[str | None, BeforeValidator(_lower_or_none), AfterValidator(_channel)]
#: Laravel's ``QUEUE_CONNECTION`` values.
QueueConnection = Annotated[
    Literal["sync", "database", "redis", "sqs"] | None, BeforeValidator(_lower_or_none)
]
#: Retry delays per attempt, in seconds (the last one repeats): Laravel's ``--backoff``.
RetrySteps = Annotated[tuple[float, ...] | None, BeforeValidator(retry_steps)]
Webhook = Annotated[SecretStr | None, AfterValidator(_webhook)]
