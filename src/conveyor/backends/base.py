"""The core job-store protocol: the few verbs every store implements.

It speaks in jobs, never in SQL or Redis terms. Workers, the scheduler, the CLI and the
dashboard only ever call these methods and the capabilities beside them
(`conveyor.backends.capabilities`: limits, scheduling, admin, telemetry, transactions),
which a store offers or not. Users never see either. The memory backend is the reference
implementation and the contract suite (`conveyor.testing.contract`) is the executable spec,
run for each store by the capabilities it declares.

The core, eleven verbs: `enqueue` / `enqueue_sync` (one job or many), `claim` (with an
explicit ``wait``), `extend`, `complete`, `fail` (retry with a relative delay, or dead),
`release`, `defer`, `recover`, `get` / `get_sync`; plus `open`, `close`, `migrate`, `clone`.

Rules every implementation keeps:

* Each method is atomic: a job is in exactly one state at any time.
* ``claim`` routes in storage: it only returns jobs the `Routing` matches, highest priority
  first, then oldest ``run_at``, then enqueue order; due scheduled jobs count as ready.
  With ``wait`` it blocks until it has claimed something or ``wait`` seconds pass; it
  leaves nothing behind for a later call, and a claim cancelled while it waits leases
  nothing (what it leased in flight is released before the cancellation goes on).
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
* ``defer`` puts a running job back to wait without using an attempt (rate limits and
  `RateLimited` use it).
* ``fail`` adds an entry to the job's attempt log (`conveyor.attempts.log_entry`:
  ``failed`` when retried, ``dead`` otherwise), and ``recover`` one (``lost``) per expired
  lease: the attempt's number, its worker, its start (the job's ``started_at``), the
  store's now as its end, the error and the task's traceback, the last
  `conveyor.attempts.KEEP` kept. `get` returns the log as ``JobRecord.attempt_log``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, cast

from conveyor.backends.capabilities import (
    Admin,
    Capability,
    Limits,
    Progress,
    Scheduling,
    Telemetry,
    Transactions,
    Unsupported,
)
from conveyor.job import (
    EnqueueResult,
    Failure,
    JobRecord,
    Lease,
    NewJob,
    Routing,
)

#: Names of the counters every backend keeps (see `Admin.counters`).
COUNTERS = ("fenced", "recovered", "poisoned")

#: How long a cancelled claim waits for its in-flight round trip, to release what it leased.
CANCEL_GRACE = 10.0


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
    """A job store: the core verbs, with its capabilities as parts beside them.

    A store hands the capability objects it has to ``__init__``; `limits`, `scheduling`,
    `admin`, `telemetry`, `transactions` and `progress` return them, or raise `Unsupported`
    (one clear line naming the store and what it lacks) for those it does not have.
    """

    url: str
    #: Whether `get` can read a job by its id. ``False`` for a store that keeps no record a
    #: job can be found by (SQS: a message is read only by receiving it), so `get` is always
    #: ``None`` there and callers say the store cannot read jobs, not that the job is gone.
    reads_jobs: ClassVar[bool] = True
    #: The capability objects by name; a store that never calls ``__init__`` has none.
    _parts: Mapping[str, Capability] = MappingProxyType({})

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        scheduling: Scheduling | None = None,
        admin: Admin | None = None,
        telemetry: Telemetry | None = None,
        transactions: Transactions | None = None,
        progress: Progress | None = None,
    ) -> None:
        self._parts = {
            part.name: part
            for part in (limits, scheduling, admin, telemetry, transactions, progress)
            if part is not None
        }

    # -- capabilities ----------------------------------------------------------------------
    @property
    def capabilities(self) -> frozenset[str]:
        """The names of the capabilities this store has (``"limits"``, ``"admin"``, ...)."""
        return frozenset(self._parts)

    def supports(self, capability: type[Capability]) -> bool:
        """Whether this store has ``capability`` (for instance `Limits`)."""
        return capability.name in self._parts

    def require(self, *capabilities: type[Capability], purpose: str = "") -> None:
        """Raise `Unsupported` now, naming the first capability this store lacks.

        ``purpose`` says what needs it ("the scheduler"), so the message tells the user what
        to change before anything has started.
        """
        for capability in capabilities:
            if not self.supports(capability):
                raise Unsupported(self._lacking(capability, purpose))

    def _part(self, capability: type[Capability]) -> object:
        part: object = self._parts.get(capability.name)
        if not isinstance(part, capability):
            raise Unsupported(self._lacking(capability, ""))
        return part

    def _lacking(self, capability: type[Capability], purpose: str) -> str:
        scheme = self.url.partition("://")[0] or self.url
        need = f"{purpose} needs" if purpose else "that needs"
        return (
            f"the {scheme}:// store {capability.lacking} (it has no {capability.name} "
            f"capability); {need} {capability.instead}"
        )

    @property
    def limits(self) -> Limits:
        """Rate windows and concurrency slots."""
        return cast(Limits, self._part(Limits))

    @property
    def scheduling(self) -> Scheduling:
        """The scheduler's leader lease and recorded cron ticks."""
        return cast(Scheduling, self._part(Scheduling))

    @property
    def admin(self) -> Admin:
        """Listing, counting, repairing, deleting and pausing jobs."""
        return cast(Admin, self._part(Admin))

    @property
    def telemetry(self) -> Telemetry:
        """Per-minute history and the live-worker registry."""
        return cast(Telemetry, self._part(Telemetry))

    @property
    def transactions(self) -> Transactions:
        """Enqueue inside the caller's database transaction."""
        return cast(Transactions, self._part(Transactions))

    @property
    def progress(self) -> Progress:
        """The latest progress report of a running job."""
        return cast(Progress, self._part(Progress))

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

    # -- working -------------------------------------------------------------------------
    @abc.abstractmethod
    async def claim(
        self,
        worker_id: str,
        routing: Routing,
        limit: int,
        lease_seconds: float,
        *,
        wait: float = 0.0,
    ) -> list[JobRecord]:
        """Move up to ``limit`` matching jobs to running under a new lease, in run order.

        With nothing to claim and ``wait > 0``, block until something can be claimed (an
        enqueue from any handle, a scheduled job falling due, a queue resumed) and claim it
        then, or return ``[]`` after ``wait`` seconds. Nothing is kept for a later call, and
        a cancelled claim leaves no job leased. Jobs of paused queues are never claimed.
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
    async def defer(
        self, lease: Lease, delay: float, headers: dict[str, Any] | None = None
    ) -> bool:
        """Put a running job back to wait ``delay`` seconds, without using an attempt.

        The job becomes scheduled at ``now + delay`` on the backend's clock (ready at once
        when ``delay <= 0``), ``attempts`` goes back down by one and the lease is dropped; its
        headers are replaced by ``headers`` when given. ``False`` (and counted under
        ``fenced``) if the lease was lost.
        """

    @abc.abstractmethod
    async def recover(self, max_recoveries: int) -> RecoveryReport:
        """Return jobs with expired leases to ready, or dead once out of recoveries."""

    # -- reading -------------------------------------------------------------------------
    @abc.abstractmethod
    async def get(self, job_id: str) -> JobRecord | None:
        """One job by id, or ``None`` (always, on a store whose `reads_jobs` is false)."""

    @abc.abstractmethod
    def get_sync(self, job_id: str) -> JobRecord | None:
        """`get` for code that has no event loop."""


async def claim_waiting(
    backend: Backend,
    claim: Callable[[], Awaitable[list[JobRecord]]],
    sleep: Callable[[float], Awaitable[None]],
    wait: float,
    *,
    limit: int,
) -> list[JobRecord]:
    """`Backend.claim` with ``wait``, for stores that can sleep until work may be ready.

    ``claim()`` claims (up to ``limit`` jobs) now; ``sleep(seconds)`` returns when work may
    have arrived for the routing (or after ``seconds``). Each claim runs shielded: if the
    caller is cancelled while one is in flight, its jobs are released before the
    cancellation goes on, so a cancelled wait never leaves a job leased to nobody. A claim of
    no jobs (``limit <= 0``) claims once and never waits: ready work it cannot take would
    end every sleep at once, a busy loop until the deadline.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (wait if limit > 0 else 0.0)
    while True:
        jobs = await _shielded_claim(backend, claim)
        left = deadline - loop.time()
        if jobs or left <= 0:
            return jobs
        await sleep(left)


async def _shielded_claim(
    backend: Backend, claim: Callable[[], Awaitable[list[JobRecord]]]
) -> list[JobRecord]:
    task = asyncio.ensure_future(claim())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await release_claimed(backend, task)
        raise


async def release_claimed(backend: Backend, claim: asyncio.Future[list[JobRecord]]) -> None:
    """Wait for a claim whose caller was cancelled, and give back every job it leased."""
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(asyncio.shield(claim), CANCEL_GRACE)
    if not claim.done() or claim.cancelled() or claim.exception() is not None:
        return
    for job in claim.result():
        if job.lease_token is not None:
            with contextlib.suppress(Exception):
                await backend.release(Lease(job.id, job.lease_token))


def transactions_for(backend: Backend, connection: object) -> Transactions:
    """The store's `Transactions`, or a `ConfigError` saying why ``connection=`` cannot work."""
    if not backend.supports(Transactions):
        raise Unsupported(no_transactional_enqueue(backend.url, connection))
    return backend.transactions


def no_transactional_enqueue(url: str, connection: object) -> str:
    """Why a store that cannot join the caller's transaction refuses ``connection=``."""
    scheme = url.partition("://")[0] or url
    return (
        f"transactional enqueue (connection={type(connection).__name__}) needs the PostgreSQL "
        f"backend: the {scheme}:// backend cannot join your database transaction. Enqueue "
        "without connection=, or set CONVEYOR_URL to the postgresql:// database that "
        "connection belongs to"
    )
