"""Every pool setting and how its value is read: `KEYS` maps each key (``max_jobs``) to
the parser that turns a variable's text or a file's value into what a `Pool` holds.

A parser raises `ValueError` with what the value must be; `conveyor.supervisor.config`
turns it into a `ConfigError` naming the variable or the file key it came from. Durations
accept units (``30s``, ``5m``) and the memory limit sizes (``512MB``), as everywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from conveyor.errors import ConfigError
from conveyor.job import Priority
from conveyor.settings.units import parse_duration, parse_size

__all__ = ["KEYS", "flag"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _int(low: int, *, megabytes: bool = False) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"must be a whole number >= {low}")
        try:
            if megabytes and isinstance(value, str) and re.search("[a-zA-Z]", value):
                number = parse_size(value, 1024**2)  # "512MB", "1GB"
            else:
                number = int(value)
        except ValueError:
            raise ValueError(f"must be a whole number >= {low}") from None
        if number < low:
            raise ValueError(f"must be a whole number >= {low}")
        return number

    return parse


def _float(low: float, high: float | None = None, *, zero: bool = False) -> Callable[[Any], float]:
    bound = f"{'>=' if zero else '>'} {low:g}" + (f" and <= {high:g}" if high else "")

    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"must be a number of seconds {bound}")
        try:
            number = parse_duration(value) if isinstance(value, str) else float(value)
        except ValueError:
            raise ValueError(
                f"must be a number of seconds {bound} (or a duration: 500ms, 30s, 5m, 1h)"
            ) from None
        too_low = number < low if zero else number <= low
        if too_low or (high is not None and number > high) or not math.isfinite(number):
            raise ValueError(f"must be a number of seconds {bound}")
        return number

    return parse


def flag(value: Any) -> bool:
    """A bool, or a word for one (``1 true yes on``, ``0 false no off``, empty; any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("must be true or false")


def _backoff(value: Any) -> tuple[float, ...] | None:
    from conveyor.settings.values import retry_steps

    return retry_steps(value)


def _names(value: Any) -> tuple[str, ...] | None:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError("must be a comma-separated string or a list of names")
    names = tuple(i.strip() for i in items if i.strip())
    return names or None


def _priorities(value: Any) -> tuple[str, ...] | None:
    names = _names(value)
    if names is None:
        return None
    try:
        return tuple(Priority.parse(n).label for n in names)
    except ConfigError:
        raise ValueError(
            "each priority must be high, normal, low, or a whole number (above 0 is high)"
        ) from None


#: Every pool setting: key → parser. The variable is ``<POOL>_WORKER_<KEY>`` or
#: ``WORKER_<KEY>``.
KEYS: dict[str, Callable[[Any], Any]] = {
    "processes": _int(1),
    "concurrency": _int(1),
    "queues": _names,
    "priorities": _priorities,
    "job_types": _names,
    "max_jobs": _int(1),
    "memory_limit": _int(1, megabytes=True),
    "max_time": _float(0),
    "timeout": _float(0),
    "sleep": _float(0, 60),
    "tries": _int(1),
    "grace_period": _float(0, zero=True),
    "queues_ordered": flag,
    "backoff": _backoff,
}
