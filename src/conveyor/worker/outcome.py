"""How one claimed job ended for this worker: one value, settled in one place.

Running a job (`executor.execute`, or admission stopping it at a limit) gives a `Ran`:
`Succeeded`, `Failed` (a retry or dead, as its `Failure.retry_in` says) or `Deferred` (put
back to wait without using an attempt: a rate or concurrency limit, a `RateLimited` raised
by the task, limits that could not be checked). A job the worker cancels ends `Released`
(given back at shutdown), `Lost` (its lease was taken) or `Abandoned` (its thread still
runs). `Reporter.settle` matches on the `Outcome` and tells the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.job import Failure


@dataclass(frozen=True, slots=True)
class Succeeded:
    """The task returned; ``result`` is its encoded return value (``None`` for none)."""

    result: bytes | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """The run failed: retried after ``failure.retry_in`` seconds, or dead when ``None``."""

    failure: Failure
    #: The exception behind the failure, if any (eager mode re-raises it to the caller).
    exception: BaseException | None = None
    #: A plain ``def`` task overran its timeout: its thread still runs, the worker restarts.
    timed_out_thread: bool = False

    @property
    def retrying(self) -> bool:
        """Whether the store schedules another attempt."""
        return self.failure.retry_in is not None


@dataclass(frozen=True, slots=True)
class Deferred:
    """Put back to wait ``delay`` seconds in storage without using an attempt.

    ``reason`` names why: ``rate_limit`` or ``concurrency`` (a limit of the task),
    ``retry_after`` (the task raised `RateLimited`) or ``unchecked`` (the limits could not
    be checked). ``headers``, when given, replace the job's (they count the waits).
    """

    delay: float
    reason: str
    headers: dict[str, Any] | None = None
    #: The `RateLimited` the task raised, if that is why (eager mode reports it).
    exception: BaseException | None = None


@dataclass(frozen=True, slots=True)
class Released:
    """Cancelled at shutdown: given back to ready at once, its attempt unused."""


@dataclass(frozen=True, slots=True)
class Lost:
    """Cancelled because another worker holds its lease now: nothing left to report."""


@dataclass(frozen=True, slots=True)
class Abandoned:
    """Its plain ``def`` thread still ran at the end of the grace period.

    Releasing it would let another worker run it while the thread still does, so it is
    left to its lease, which expires once this process exits; then the job is recovered.
    """


#: What running a job gives (`executor.execute`, admission).
Ran = Succeeded | Failed | Deferred
#: Every way a claimed job ends for this worker.
Outcome = Succeeded | Failed | Deferred | Released | Lost | Abandoned
