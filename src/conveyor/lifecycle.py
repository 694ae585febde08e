"""Stop signals, handled one way by the worker, the scheduler and the supervisor.

Each installs plain `signal.signal` handlers for SIGTERM and SIGINT (and what else it needs)
while it runs, and puts back what was there before when it stops. Plain handlers, not the
event loop's own: those run only when the loop turns, so code that blocks the loop would make
the process deaf to signals. The handler itself only notes the signal and hands it on: to a
callback on the event loop (``call_soon_threadsafe``) for the async parts, or straight to the
callback for the supervisor's plain loop (which must then keep it tiny).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

#: The signals that ask a process to stop: the first gracefully, a second at once.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalTrap:
    """Routes ``signals`` to ``callback`` until `remove`; counts them and keeps their times."""

    def __init__(
        self,
        callback: Callable[[signal.Signals], None],
        signals: Sequence[signal.Signals] = STOP_SIGNALS,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """``loop``: run ``callback`` on that loop (otherwise in the handler itself)."""
        self.callback = callback
        self.loop = loop
        #: ``time.monotonic()`` of each signal received, in order: written by the handler
        #: itself, so a thread can read it even while the loop is stuck.
        self.times: list[float] = []
        self._previous: dict[signal.Signals, Any] = {}
        for sig in signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)

    @property
    def count(self) -> int:
        """How many of the trapped signals have arrived."""
        return len(self.times)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        self.times.append(time.monotonic())
        if self.loop is None:
            self.callback(sig)
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.callback, sig)

    def remove(self) -> None:
        """Put back the handlers that were there before."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
