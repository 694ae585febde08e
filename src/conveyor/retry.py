"""Backoff policies: how long a failed job waits before its next attempt.

A policy is any callable taking the attempt number that just failed (1 for the first run)
and returning a delay in seconds. A task without its own ``backoff=`` inherits the worker's
(`conveyor.worker.backoff.worker_backoff`: ``WORKER_BACKOFF``, ``--backoff``, else
`exponential` from ``WORKER_BACKOFF_BASE`` up to ``WORKER_BACKOFF_MAX``); a task's own
policy always wins.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.errors import ConfigError

Backoff = Callable[[int], float]


@dataclass(frozen=True, slots=True)
class exponential:  # noqa: N801 - reads like a function at the call site
    """``base * factor ** (attempt - 1)``, capped at ``maximum``.

    With ``jitter`` the delay is drawn uniformly from its upper half, so jobs that failed
    together do not all come back in the same instant.
    """

    base: float = 1.0
    factor: float = 2.0
    maximum: float = 3600.0
    jitter: bool = True

    def __call__(self, attempt: int) -> float:
        delay = min(self.maximum, self.base * self.factor ** max(0, attempt - 1))
        if self.jitter:
            delay = random.uniform(delay / 2, delay)  # noqa: S311 - not cryptographic
        return delay


@dataclass(frozen=True, slots=True)
class linear:  # noqa: N801
    """``step * attempt``, capped at ``maximum``."""

    step: float = 5.0
    maximum: float = 3600.0

    def __call__(self, attempt: int) -> float:
        return min(self.maximum, self.step * max(1, attempt))


@dataclass(frozen=True, slots=True)
class fixed:  # noqa: N801
    """The same ``delay`` every time."""

    delay: float = 5.0

    def __call__(self, attempt: int) -> float:
        return self.delay


@dataclass(frozen=True, slots=True)
class steps:  # noqa: N801
    """One delay per attempt, the last repeating: Laravel's ``backoff = [1, 5, 10]``."""

    delays: tuple[float, ...]

    def __call__(self, attempt: int) -> float:
        return self.delays[min(max(1, attempt), len(self.delays)) - 1]


#: The policy of a task that names none: the worker's (`conveyor.worker.backoff`) takes its place
#: when the job fails in a worker; called directly it is the plain exponential default.
INHERITED = exponential()


def resolve_backoff(value: Backoff | str | float | Sequence[float] | None) -> Backoff:
    """Turn a task's ``backoff=`` option into a policy.

    Accepts a policy or callable, a number of seconds (fixed), a list of seconds (one per
    attempt, the last repeating), or one of the names ``"exponential"``, ``"linear"``,
    ``"fixed"``. ``None`` inherits the worker's backoff (`INHERITED`).
    """
    if value is None:
        return INHERITED
    if value == "exponential":
        return exponential()
    if value == "linear":
        return linear()
    if value == "fixed":
        return fixed()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(f"backoff={value!r} is negative; give a delay in seconds >= 0")
        return fixed(float(value))
    if callable(value):
        return value
    if isinstance(value, list | tuple) and value and all(_seconds(v) for v in value):
        return steps(tuple(float(v) for v in value))
    raise ConfigError(
        f"backoff={value!r} is not understood: use 'exponential', 'linear', 'fixed', "
        "a number of seconds, a list of seconds per attempt, or a callable taking the "
        "attempt number"
    )


def _seconds(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1e12
