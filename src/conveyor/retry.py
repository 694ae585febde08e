"""Backoff policies: how long a failed job waits before its next attempt.

A policy is any callable taking the attempt number that just failed (1 for the first run)
and returning a delay in seconds. `exponential` (with jitter) is the default.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

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


def resolve_backoff(value: Backoff | str | float | None) -> Backoff:
    """Turn a task's ``backoff=`` option into a policy.

    Accepts a policy or callable, a number of seconds (fixed), or one of the names
    ``"exponential"``, ``"linear"``, ``"fixed"``.
    """
    if value is None or value == "exponential":
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
    raise ConfigError(
        f"backoff={value!r} is not understood: use 'exponential', 'linear', 'fixed', "
        "a number of seconds, or a callable taking the attempt number"
    )
