"""Checks of the options a task or a call is given: task and queue names, seconds,
retries, unique keys and run times.

Each check returns the value (as the type a job stores) or raises a one-line
`InvalidOption` / `ConfigError` naming the option, the value and what to give instead.
`conveyor.task` checks a task's options with them, `conveyor.app` the options of
``@app.task``, `conveyor.schedule` the names of entries and the app's enqueueing a
call's ``delay``, ``run_at`` and unique key.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import TYPE_CHECKING

from conveyor.errors import ConfigError, InvalidOption
from conveyor.serialization import (
    MAX_NAME_CHARS,
    MAX_RUN_AT,
    MAX_UNIQUE_KEY_BYTES,
    clip_repr,
)

if TYPE_CHECKING:
    from conveyor.clock import Clock

__all__ = [
    "check_name",
    "check_retries",
    "check_run_at",
    "check_seconds",
    "check_unique_key",
    "run_time",
]

_NAME = re.compile(rf"[A-Za-z0-9_.:\-]{{1,{MAX_NAME_CHARS}}}")


def check_name(kind: str, value: str) -> str:
    """Queue and task names: 1 to `MAX_NAME_CHARS` letters, digits, ``_ . : -``."""
    # fullmatch, not match with "$": "$" also matches before a trailing newline.
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigError(
            f"{kind} name {clip_repr(value)} is not valid: use 1 to {MAX_NAME_CHARS} "
            "characters from letters, digits, '_', '.', ':' and '-' (no spaces or control "
            "characters)"
        )
    return value


def check_seconds(option: str, value: object, *, positive: bool = False) -> float:
    """A finite, non-negative number of seconds (``> 0`` with ``positive``), or `InvalidOption`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidOption(
            f"{option}={clip_repr(value)} is a {type(value).__name__}, not a number of "
            f"seconds; give e.g. {option}=30"
        )
    if not math.isfinite(value):
        raise InvalidOption(
            f"{option}={value!r} is not a finite number of seconds; give e.g. {option}=30"
        )
    if positive and value <= 0:
        raise InvalidOption(f"{option}={value!r} must be > 0 seconds")
    if value < 0:
        raise InvalidOption(f"{option}={value!r} is negative; give seconds >= 0")
    return float(value)


def check_retries(value: object) -> int:
    """A whole number of retries, 0 or more, or `InvalidOption`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOption(
            f"retries={clip_repr(value)} is a {type(value).__name__}; give a whole number >= 0"
        )
    if value < 0:
        raise InvalidOption(f"retries={value!r} is negative; give 0 or more")
    return value


def check_unique_key(value: object) -> str:
    """A unique key: ``str``, valid Unicode, at most `MAX_UNIQUE_KEY_BYTES` as UTF-8."""
    if not isinstance(value, str):
        raise InvalidOption(
            f"unique_key={clip_repr(value)} is a {type(value).__name__}; give a str (or a "
            "function returning one), e.g. f'sync-{product_id}'"
        )
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidOption(
            f"unique_key={clip_repr(value)} holds a lone surrogate, which is not valid "
            "Unicode text; fix the text where it came from"
        ) from None
    if size > MAX_UNIQUE_KEY_BYTES:
        raise InvalidOption(
            f"unique_key={clip_repr(value)} takes {size:,} bytes, over the "
            f"{MAX_UNIQUE_KEY_BYTES:,}-byte limit; use a short key, e.g. a hash of the "
            "data (hashlib.sha256(data).hexdigest())"
        )
    return value


def check_run_at(value: object) -> float:
    """A finite Unix time, no later than `MAX_RUN_AT` (9999-12-31), or `InvalidOption`."""
    seconds = check_seconds("run_at", value)
    if seconds > MAX_RUN_AT:
        raise InvalidOption(
            f"run_at={value!r} is after 9999-12-31 (the latest time a job may run); give a "
            "Unix time or an aware datetime before that"
        )
    return seconds


def run_time(clock: Clock, delay: float | None, run_at: datetime | float | None) -> float | None:
    """When a job is due: ``delay`` seconds from now, or ``run_at``; ``None`` means now."""
    if delay is not None:
        at = clock.now() + check_seconds("delay", delay)
        if at > MAX_RUN_AT:
            raise InvalidOption(
                f"delay={delay!r} puts the job's run time after 9999-12-31, the latest "
                "allowed; give a shorter delay"
            )
        return at
    if isinstance(run_at, datetime):
        if run_at.tzinfo is None:
            raise ConfigError(
                "run_at is a naive datetime; give an aware one (e.g. with tzinfo=UTC)"
            )
        return check_run_at(run_at.timestamp())
    return None if run_at is None else check_run_at(run_at)
