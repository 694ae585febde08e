"""What the metrics and probes read from a worker process, as a protocol.

The worker uses this package (``conveyor worker --metrics-port``), so this package must not
import the worker back: a `Worker` fits `MetricsSource` without naming it, and a test can
hand in anything else of the same shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.job import JobRecord

#: Called when a job ends: the job, its outcome (``succeeded``, ``dead``, ...) and the
#: seconds it ran (the shape of the worker's ``JobObserver``).
JobObserver = Callable[["JobRecord", str, float], None]


class JobCounts(Protocol):
    """The worker's counters the metrics export (a `WorkerStats` fits)."""

    @property
    def succeeded(self) -> int:
        """Jobs that succeeded."""
        ...

    @property
    def retried(self) -> int:
        """Failed runs scheduled again."""
        ...

    @property
    def dead(self) -> int:
        """Jobs dead-lettered."""
        ...

    @property
    def released(self) -> int:
        """Jobs given back to ready at shutdown."""
        ...

    @property
    def lost(self) -> int:
        """Jobs whose lease was lost while they ran."""
        ...

    @property
    def fenced(self) -> int:
        """Results rejected because the lease was no longer held."""
        ...

    @property
    def busy_seconds(self) -> float:
        """Run time of finished jobs, summed."""
        ...

    @property
    def waits(self) -> Mapping[tuple[str, str], int]:
        """Jobs put back to wait, by (task, reason)."""
        ...


class WorkerSnapshot(Protocol):
    """One consistent read of a worker's numbers (a `WorkerStats` fits)."""

    @property
    def host(self) -> str:
        """The host the worker runs on."""
        ...

    @property
    def running(self) -> int:
        """Jobs running now."""
        ...

    @property
    def utilisation(self) -> float:
        """Busy time over available slot time since the worker started (0 to 1)."""
        ...

    @property
    def uptime(self) -> float:
        """Seconds since the worker started."""
        ...


class MetricsSource(Protocol):
    """One worker as the collector and the probes see it (a `Worker` fits)."""

    @property
    def id(self) -> str:
        """The worker's id in the registry."""
        ...

    @property
    def pool(self) -> str | None:
        """The pool the worker belongs to (``conveyor run``), if any."""
        ...

    @property
    def concurrency(self) -> int:
        """Jobs the worker runs at once at most."""
        ...

    @property
    def app(self) -> Conveyor:
        """The app the worker runs (its tasks start the per-task series at 0)."""
        ...

    @property
    def counts(self) -> JobCounts:
        """The worker's counters, read at scrape time."""
        ...

    @property
    def stop_reason(self) -> str | None:
        """Why the worker is stopping (``None`` while it runs)."""
        ...

    @property
    def job_observers(self) -> list[JobObserver]:
        """Per-job hooks; the duration histogram adds itself here."""
        ...

    def stats(self) -> WorkerSnapshot:
        """One consistent read of the worker's numbers (``host``, ``running``, ...)."""
        ...

    def heartbeat_age(self) -> float | None:
        """Seconds since the registry last heard from the worker (``None``: never)."""
        ...

    def heartbeat_ttl(self) -> float:
        """How old a heartbeat may get before the worker counts as gone."""
        ...
