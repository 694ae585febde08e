"""The one source of time: every lease, delay and retry asks a `Clock`.

Tests swap in `FakeClock` to move time forward without sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time in seconds since the epoch, as a float."""

    def now(self) -> float:
        """Return the current time."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> float:
        """Return `time.time()`."""
        return time.time()


class FakeClock:
    """A clock that only moves when told to; thread-safe."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        """Return the fake current time."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        with self._lock:
            self._now += seconds

    def set(self, when: float) -> None:
        """Jump to ``when``."""
        with self._lock:
            self._now = when


SYSTEM_CLOCK = SystemClock()
