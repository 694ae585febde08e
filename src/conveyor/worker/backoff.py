"""Back-off for a store that keeps failing, with a log that stays readable during an outage.

While the store is down every claim fails (and at start every connection, `connect`). The
worker waits longer after each failure (doubling from ``first`` up to ``cap``), and nothing
but a stop may cut a wait short: a job that ends meanwhile must not turn the back-off into
a busy loop. ``WORKER_ERROR_BACKOFF`` and ``WORKER_ERROR_BACKOFF_MAX`` set ``first`` and
``cap`` for the whole worker (the Redis worker seed's error backoff). The log gets one
warning per step of the back-off, then one reminder per ``remind`` seconds at the cap, and
a summary when the store answers again.

The retry backoff of failed jobs has a worker-wide default too (`worker_backoff`): tasks
that set no ``backoff=`` inherit it, and `retry_delay` picks the one that applies.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConfigError, SchemaVersionError
from conveyor.retry import INHERITED, exponential, steps

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.backends.base import Backend
    from conveyor.retry import Backoff as RetryBackoff
    from conveyor.settings import Settings
    from conveyor.task import Task
    from conveyor.worker.fetcher import Events

log = logging.getLogger("conveyor.worker")


class Backoff:
    """How long to wait after each failure of one operation, and what to log about it."""

    def __init__(
        self,
        what: str,
        log: logging.Logger,
        *,
        first: float = 0.1,
        cap: float = 10.0,
        remind: float = 60.0,
    ) -> None:
        self.what = what
        self.log = log
        self.first = first
        self.cap = cap
        self.remind = remind
        self.failures = 0
        self._delay = 0.0
        self._since = 0.0
        self._last_line = 0.0
        self._quiet = 0

    def failed(self, exc: BaseException) -> float:
        """Count a failure; the seconds to wait before the next attempt."""
        now = time.monotonic()
        if self.failures == 0:
            self._since = now
        self.failures += 1
        previous = self._delay
        self._delay = min(self.cap, self.first if previous == 0 else previous * 2)
        if self._delay > previous:
            self.log.warning(
                "%s failed (%s); retrying in %.1fs", self.what, _one_line(exc), self._delay
            )
            self._last_line = now
            if self._delay >= self.cap:
                self.log.warning(
                    "%s keeps failing: retrying every %gs, with one line per %.0fs from now on",
                    self.what,
                    self.cap,
                    self.remind,
                )
        elif now - self._last_line >= self.remind:
            self.log.warning(
                "%s still failing after %d attempts over %.0fs (%d not logged): %s",
                self.what,
                self.failures,
                now - self._since,
                self._quiet,
                _one_line(exc),
            )
            self._last_line = now
            self._quiet = 0
        else:
            self._quiet += 1
        return self._delay

    def succeeded(self) -> None:
        """The operation worked: log a summary if it had been failing, and start over."""
        if self.failures:
            self.log.warning(
                "%s works again after %d failed attempt%s over %.1fs",
                self.what,
                self.failures,
                "s" * (self.failures != 1),
                time.monotonic() - self._since,
            )
        self.failures = 0
        self._delay = 0.0
        self._quiet = 0


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ") or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


async def connect(app: Conveyor, events: Events) -> Backend | None:
    """Open ``app``'s store, retrying with back-off until it answers or the worker stops.

    ``None`` when the worker stopped first. A `ConfigError` or `SchemaVersionError` is
    raised at once: waiting cannot fix those, an operator must (``conveyor migrate``).
    """
    s = app.settings
    backoff = Backoff(
        "connecting to the backend",
        log,
        first=max(0.2, s.worker_error_backoff),
        cap=s.worker_error_backoff_max,
    )
    while not events.stopping.is_set():
        try:
            backend = await app.open()
        except (ConfigError, SchemaVersionError):
            raise
        except Exception as exc:  # noqa: BLE001 - keep trying until stopped
            await events.sleep(backoff.failed(exc))
            continue
        backoff.succeeded()
        return backend
    return None


def worker_backoff(settings: Settings) -> RetryBackoff:
    """The retry backoff tasks without their own inherit: ``WORKER_BACKOFF`` (seconds, or
    one per attempt) when set, else exponential from ``WORKER_BACKOFF_BASE`` to ``_MAX``."""
    if settings.worker_backoff:
        return steps(settings.worker_backoff)
    return exponential(base=settings.worker_backoff_base, maximum=settings.worker_backoff_max)


def retry_delay(task: Task[Any, Any], attempt: int) -> float:
    """Seconds before ``task``'s next attempt after ``attempt`` failed: the task's own
    policy, or, when it set none (`conveyor.retry.INHERITED`), the worker's, read from its
    app's settings (which the worker's flags have updated)."""
    if task.backoff is INHERITED:
        return worker_backoff(task.app.settings)(attempt)
    return task.backoff(attempt)
