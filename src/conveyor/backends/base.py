"""The Backend protocol: the one small surface every storage engine implements.

It speaks in jobs, never in SQL or Redis terms. Workers, the scheduler, the CLI and the
dashboard only ever call these methods; users never see them. The memory backend is the
reference implementation and `tests/contract/` is the executable spec every backend passes.

Rules every implementation keeps:

* Each method is atomic: a job is in exactly one state at any time.
* ``claim`` routes in storage: it only returns jobs the `Routing` matches, highest priority
  first, then oldest ``run_at``, then enqueue order; due scheduled jobs count as ready.
* ``claim`` adds one to ``attempts`` and gives the job a lease: an expiry on the backend's
  clock and a random token. ``extend``/``complete``/``fail``/``release`` succeed only with
  the current token; a stale token is rejected, counted under ``fenced``, and changes nothing.
* Time is the backend's own: lease expiries, retries and waits are stored as its "now"
  (its clock object, or the server's time for a server store) plus a relative delay the
  caller hands over (``lease_seconds``, `Failure.retry_in`, ``delay``), never a time read
  from the caller's host clock.
* ``recover`` returns jobs whose lease expired to ready (one more ``recoveries``, the attempt
  given back) or, once ``recoveries`` reaches ``max_recoveries``, to dead as a poison pill.
* A unique key is held while the job is scheduled, ready or running; enqueueing the same key
  then returns the existing job with ``existing=True``.

The scheduler's three calls keep the rest of the promise "each cron tick runs once":
``acquire_lease`` / ``release_lease`` elect one active scheduler (a named lease on the
backend's clock), and ``enqueue_tick`` enqueues a tick's job and records the tick in one
atomic step that refuses a tick not newer than the one recorded, so even two schedulers
that both believe they lead cannot enqueue one tick twice. ``schedule_state`` reads back
the last tick of each entry.

Limits (see docs/limits.md): ``rate_acquire`` is a sliding window of job starts per key,
``slot_acquire`` / ``slot_release`` a counting semaphore per key whose slots expire like
leases (so a dead worker's slot comes free), and ``defer`` puts a running job back to wait
without using an attempt. Operations: ``pause_queue`` stops ``claim`` from taking a queue's
jobs until ``resume_queue``; ``record_history`` / ``history`` keep per-minute counts of
finished attempts; ``oldest_ready`` says how long each queue's oldest ready job has waited.

A few methods are optional, with defaults here: `migrate` (backends with a schema),
`diagnostics` (health warnings for ``conveyor status``) and `enqueue_in` /
`enqueue_in_async` (transactional enqueue on the caller's own database connection).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.errors import ConfigError
from conveyor.job import (
    EnqueueResult,
    Failure,
    HistoryPoint,
    JobQuery,
    JobRecord,
    Lease,
    NewJob,
    QueueStats,
    Routing,
    State,
    WorkerInfo,
)

#: Names of the counters every backend keeps (see `Backend.counters`).
COUNTERS = ("fenced", "recovered", "poisoned")


@dataclass(slots=True, frozen=True)
class RecoveryReport:
    """What one `Backend.recover` pass did."""

    recovered: int = 0
    dead: int = 0


def poison_pill_reason(recoveries: int) -> str:
    """The error stored on a job dead-lettered because it kept losing its worker."""
    return (
        f"worker_lost: the job's worker died or lost its lease {recoveries} times "
        "(poison pill); it was dead-lettered so it cannot take down more workers. "
        "Fix the task, then run `conveyor failed retry ID`."
    )


class Backend(abc.ABC):
    """Storage for jobs. Async throughout; the only sync calls are enqueue and get."""

    url: str

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect and check the schema. Called once before any other async method."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The backend may not be used afterwards."""

    async def migrate(self) -> str:
        """Create or upgrade the storage schema, open the backend, and say what was done.

        ``conveyor migrate`` calls this; backends without a separate migration step simply
        open (which sets up their storage).
        """
        await self.open()
        return "nothing to migrate: this backend sets up its storage when it opens"

    @abc.abstractmethod
    def clone(self) -> Backend:
        """A new handle on the same store, for use from another thread or event loop."""

    # -- producing -----------------------------------------------------------------------
    @abc.abstractmethod
    async def enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """Store jobs atomically, in order; one result per job."""

    @abc.abstractmethod
    def enqueue_sync(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """`enqueue` for code that has no event loop."""

    def enqueue_in(self, connection: object, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """Store jobs through the caller's ``connection``, inside its open transaction.

        The jobs exist only if that transaction commits. Only backends that live in the
        caller's database can do this; the default refuses with a `ConfigError`.
        """
        raise ConfigError(_no_transactional_enqueue(self.url, connection))

    async def enqueue_in_async(
        self, connection: object, jobs: Sequence[NewJob]
    ) -> list[EnqueueResult]:
        """`enqueue_in` for an async connection (or session)."""
        raise ConfigError(_no_transactional_enqueue(self.url, connection))

    # -- working -------------------------------------------------------------------------
    @abc.abstractmethod
    async def claim(
        self, worker_id: str, routing: Routing, limit: int, lease_seconds: float
    ) -> list[JobRecord]:
        """Move up to ``limit`` matching jobs to running under a new lease, in run order.

        Jobs of paused queues are never claimed.
        """

    @abc.abstractmethod
    async def extend(self, leases: Sequence[Lease], lease_seconds: float) -> list[bool]:
        """Push the leases' expiry forward; ``False`` for each lease no longer held."""

    @abc.abstractmethod
    async def complete(self, lease: Lease, result: bytes | None) -> bool:
        """Mark the job succeeded and keep its result; ``False`` if the lease was lost."""

    @abc.abstractmethod
    async def fail(self, lease: Lease, failure: Failure) -> bool:
        """Schedule a retry or dead-letter the job; ``False`` if the lease was lost.

        With ``failure.retry_in`` set the job becomes scheduled at ``now + retry_in`` on the
        backend's clock (the same clock as its lease expiry), with ``last_error`` and
        ``traceback`` stored and the lease dropped; with ``retry_in=None`` it is dead
        (``failed_at`` = now) and its unique key is freed. The attempt stays used. ``False``
        (and counted under ``fenced``, nothing changed) when the lease is not held.
        """

    @abc.abstractmethod
    async def release(self, lease: Lease) -> bool:
        """Give a running job back to ready at once, returning its attempt (shutdown)."""

    @abc.abstractmethod
    async def recover(self, max_recoveries: int) -> RecoveryReport:
        """Return jobs with expired leases to ready, or dead once out of recoveries."""

    @abc.abstractmethod
    async def defer(
        self, lease: Lease, delay: float, headers: dict[str, Any] | None = None
    ) -> bool:
        """Put a running job back to wait ``delay`` seconds, without using an attempt.

        The job becomes scheduled at ``now + delay`` on the backend's clock (ready at once
        when ``delay <= 0``), ``attempts`` goes back down by one and the lease is dropped; its
        headers are replaced by ``headers`` when given. ``False`` (and counted under
        ``fenced``) if the lease was lost. Rate limits and `RateLimited` use it.
        """

    @abc.abstractmethod
    async def wait_for_work(self, routing: Routing, timeout: float) -> None:
        """Sleep until work may be ready for ``routing``, or ``timeout`` seconds pass.

        Ready jobs of paused queues do not count (they must not turn the wait into a busy
        loop); `resume_queue` wakes waiters.
        """

    # -- limits --------------------------------------------------------------------------
    @abc.abstractmethod
    async def rate_acquire(self, key: str, limit: int, period: float) -> float:
        """Take one start from the sliding window ``key``: ``limit`` starts per ``period``.

        Returns ``0.0`` when granted, recording the start at the backend's ``now``. When
        ``limit`` starts already lie in ``(now - period, now]`` nothing is recorded and the
        result is the seconds until the oldest of them leaves the window (always > 0).
        Atomic across every handle on the store.
        """

    @abc.abstractmethod
    async def slot_acquire(self, key: str, holder: str, limit: int, ttl: float) -> bool:
        """Hold one of ``limit`` concurrency slots of ``key`` for ``ttl`` seconds.

        True when ``holder`` now holds a slot: a free one was taken, or ``holder`` already
        held one and its expiry was pushed to ``now + ttl``. Slots past their expiry are
        free, so a dead worker's slot comes back after its ttl. False when all ``limit``
        slots are held by others. Atomic across every handle on the store.
        """

    @abc.abstractmethod
    async def slot_release(self, key: str, holder: str) -> None:
        """Free ``holder``'s slot of ``key`` (nothing happens if it holds none)."""

    # -- reading -------------------------------------------------------------------------
    @abc.abstractmethod
    async def get(self, job_id: str) -> JobRecord | None:
        """One job by id, or ``None``."""

    @abc.abstractmethod
    def get_sync(self, job_id: str) -> JobRecord | None:
        """`get` for code that has no event loop."""

    @abc.abstractmethod
    async def query(self, query: JobQuery) -> list[JobRecord]:
        """Jobs matching ``query``, newest first."""

    @abc.abstractmethod
    async def stats(self) -> list[QueueStats]:
        """Job counts per queue and priority, by state."""

    @abc.abstractmethod
    async def counters(self) -> dict[str, int]:
        """Totals since the store was created, one per name in `COUNTERS`."""

    @abc.abstractmethod
    async def oldest_ready(self) -> dict[str, float]:
        """Per queue with ready jobs (due scheduled ones count): the oldest one's ``run_at``.

        ``now - value`` is how long that queue's oldest ready job has waited. Queues with
        no ready job are absent. Paused queues are included.
        """

    @abc.abstractmethod
    async def record_history(self, points: Sequence[HistoryPoint], keep: float) -> None:
        """Add ``points`` to the per-minute counts (summing with what is stored for the same
        minute and queue), and drop minutes older than ``keep`` seconds before now.

        A point's ``minute`` is a label from the writer's clock, not a state change: a worker
        host whose clock is off only shifts its own counts on the throughput chart (and
        ``history(since)`` filters by labels the same way); ``keep`` is an age on the
        store's clock.
        """

    @abc.abstractmethod
    async def history(self, since: float) -> list[HistoryPoint]:
        """Stored per-minute counts with ``minute >= since``, by minute then queue."""

    async def diagnostics(self) -> list[str]:
        """Warnings about the store's health (one line each) for ``conveyor status``."""
        return []

    # -- repairing -----------------------------------------------------------------------
    @abc.abstractmethod
    async def retry_dead(self, job_ids: Sequence[str] | None = None) -> int:
        """Move dead jobs (all when ``job_ids`` is ``None``) back to ready with fresh attempts."""

    @abc.abstractmethod
    async def cancel(self, job_id: str) -> bool:
        """Cancel a scheduled, ready or running job; ``False`` if it was already final."""

    @abc.abstractmethod
    async def delete(self, job_ids: Sequence[str]) -> int:
        """Delete the given jobs that are in a final state; how many were deleted.

        Jobs that are scheduled, ready or running are left alone (cancel them first).
        """

    @abc.abstractmethod
    async def pause_queue(self, queue: str) -> None:
        """Stop ``claim`` from taking jobs of ``queue`` (enqueueing goes on)."""

    @abc.abstractmethod
    async def resume_queue(self, queue: str) -> None:
        """Let ``claim`` take ``queue``'s jobs again, and wake waiting workers."""

    @abc.abstractmethod
    async def paused_queues(self) -> list[str]:
        """The names of paused queues, sorted."""

    @abc.abstractmethod
    async def purge(self, states: Sequence[State], older_than: float | None = None) -> int:
        """Delete final-state jobs in ``states``; how many were deleted.

        With ``older_than``, only jobs that finished more than ``older_than`` seconds before
        the backend's now (a job with no ``finished_at`` counts as finished at 0). An age,
        not a time: the caller's clock must not decide what a server-time store deletes.
        """

    # -- scheduling ----------------------------------------------------------------------
    @abc.abstractmethod
    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew the lease ``name`` for ``ttl`` seconds on the backend's clock.

        True when ``owner`` now holds it: it was free, expired, or already ``owner``'s.
        """

    @abc.abstractmethod
    async def release_lease(self, name: str, owner: str) -> None:
        """Give up the lease ``name`` if ``owner`` holds it (otherwise change nothing)."""

    @abc.abstractmethod
    async def schedule_state(self, names: Sequence[str]) -> dict[str, float | None]:
        """The last tick recorded for each schedule entry (``None``: never fired)."""

    @abc.abstractmethod
    async def enqueue_tick(
        self, name: str, tick: float, jobs: Sequence[NewJob]
    ) -> list[EnqueueResult] | None:
        """Atomically enqueue ``jobs`` and record ``tick`` as entry ``name``'s last tick.

        Does nothing and returns ``None`` when the recorded tick is already ``>= tick``.
        ``tick`` is an absolute time on the scheduler's clock on purpose: a cron entry names
        wall-clock times, and the recorded tick only orders one entry's ticks; the jobs
        themselves are due at the store's now, like any job enqueued without a delay.
        """

    # -- worker registry -------------------------------------------------------------------
    @abc.abstractmethod
    async def register_worker(self, info: WorkerInfo, ttl: float) -> None:
        """Record or refresh a live worker; it drops off ``ttl`` seconds after its last call."""

    @abc.abstractmethod
    async def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker that is shutting down."""

    @abc.abstractmethod
    async def workers(self) -> list[WorkerInfo]:
        """Live workers."""


def _no_transactional_enqueue(url: str, connection: object) -> str:
    scheme = url.partition("://")[0] or url
    return (
        f"transactional enqueue (connection={type(connection).__name__}) needs the PostgreSQL "
        f"backend: the {scheme}:// backend cannot join your database transaction. Enqueue "
        "without connection=, or set CONVEYOR_URL to the postgresql:// database that "
        "connection belongs to"
    )
