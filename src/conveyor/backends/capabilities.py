"""The capabilities a store may have beside the core job-store protocol (`backends.base`).

A store that can hold jobs implements `Backend`; what else it can do it says by handing one
object per capability to ``Backend.__init__``:

* `Limits` — rate windows and concurrency slots (task ``rate_limit`` / ``concurrency``);
* `Scheduling` — a scheduler leader lease and cron ticks recorded once (``conveyor scheduler``);
* `Admin` — listing, counting, repairing, deleting and pausing jobs (CLI and dashboard);
* `Telemetry` — per-minute history and a registry of live workers (dashboard, ``status``);
* `Transactions` — enqueue inside the caller's own database transaction;
* `Progress` — the latest progress a running job reported (``current_job().progress``).

Each is a small abstract class of its own. A store's parts usually share one connection
object (a pool, a client, the in-memory state) rather than calling back into the store.
Code that needs a capability reads ``store.limits`` (and so on): a store without it raises
`Unsupported`, a `ConfigError` whose one line names the store and what it cannot do, and
``store.require(...)`` says the same up front, before anything has started.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

from conveyor.errors import ConfigError
from conveyor.job import (
    EnqueueResult,
    HistoryPoint,
    JobQuery,
    JobRecord,
    Lease,
    NewJob,
    QueueStats,
    State,
    WorkerInfo,
)

#: How an `Admin.diagnostics` line that is a fact about where the store is (which servers: a
#: Redis primary and its replicas, a Sentinel service, a Cluster shard; addresses only)
#: starts. ``conveyor status`` prints such lines plainly and the dashboard lists them under
#: "topology"; every other line is a warning.
TOPOLOGY_PREFIX = "topology: "


class Unsupported(ConfigError):
    """The store lacks a capability something asked for (its message is one line)."""


class Capability(abc.ABC):
    """Base of the capability classes: each names itself and what a store without it lacks."""

    #: The attribute of a `Backend` that holds this capability (``store.limits``).
    name: ClassVar[str]
    #: How ``Unsupported`` words its absence, after "the x:// store ...".
    lacking: ClassVar[str]
    #: What to use instead, after "... needs ".
    instead: ClassVar[str] = "a store that has it, such as sqlite://, redis:// or postgresql://"


class Limits(Capability):
    """Distributed rate windows and concurrency slots (docs/limits.md)."""

    name = "limits"
    lacking = "does not keep rate limits or concurrency slots"

    @abc.abstractmethod
    async def rate_acquire(self, key: str, limit: int, period: float) -> float:
        """Take one start from the sliding window ``key``: ``limit`` starts per ``period``.

        Returns ``0.0`` when granted, recording the start at the store's ``now``. When
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


class Scheduling(Capability):
    """What keeps the promise "each cron tick runs once" with many schedulers running.

    `acquire_lease` / `release_lease` elect one active scheduler (a named lease on the
    store's clock); `enqueue_tick` enqueues a tick's jobs and records the tick in one atomic
    step that refuses a tick not newer than the one recorded, so even two schedulers that
    both believe they lead cannot enqueue one tick twice.
    """

    name = "scheduling"
    lacking = "cannot elect a scheduler or record cron ticks"

    @abc.abstractmethod
    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew the lease ``name`` for ``ttl`` seconds on the store's clock.

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


#: What a server is to a store (`ServerInfo.role`).
ServerRole = Literal["primary", "replica", "sentinel", "shard-primary", "shard-replica"]
#: Every `ServerRole`, in the order a store lists its servers.
SERVER_ROLES: tuple[ServerRole, ...] = get_args(ServerRole)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """One server a store is on, as `Admin.servers` reports it: never a password.

    ``role`` is one of `SERVER_ROLES`: ``primary`` (the server Conveyor writes to),
    ``replica`` (one of its replicas), ``sentinel`` (one a Sentinel URL names), or on a
    sharded store ``shard-primary`` and ``shard-replica`` (``shard`` is the shard's
    number, ``None`` unsharded). ``service`` is the Sentinel service (``""`` without Sentinel).
    """

    role: ServerRole
    address: str  # host:port ([v6]:port), or a unix socket path
    service: str = ""
    shard: int | None = None


class Admin(Capability):
    """Reading and repairing the store: what the CLI and the dashboard show and do.

    A store with this capability also honours paused queues in ``claim``.
    """

    name = "admin"
    lacking = "cannot list, count, repair or pause jobs"

    @abc.abstractmethod
    async def query(self, query: JobQuery) -> list[JobRecord]:
        """Jobs matching ``query``, newest first."""

    @abc.abstractmethod
    async def stats(self) -> list[QueueStats]:
        """Job counts per queue and priority, by state."""

    @abc.abstractmethod
    async def counters(self) -> dict[str, int]:
        """Totals since the store was created, one per name in `base.COUNTERS`."""

    @abc.abstractmethod
    async def oldest_ready(self) -> dict[str, float]:
        """Per queue with ready jobs (due scheduled ones count): the oldest one's ``run_at``.

        ``now - value`` is how long that queue's oldest ready job has waited. Queues with
        no ready job are absent. Paused queues are included.
        """

    async def diagnostics(self) -> list[str]:
        """Warnings about the store's health (one line each) for ``conveyor status``.

        A line starting with `TOPOLOGY_PREFIX` is not a warning but where the store is
        (``topology: server 10.0.0.5:6379 (primary); 2 replicas``).
        """
        return []

    async def servers(self) -> list[ServerInfo]:
        """The servers the store is on now, addresses only (``conveyor_store_server_info``).

        Empty (the default) for a store that is not a set of servers it can name: a file,
        a process, a managed service.
        """
        return []

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
    async def purge(self, states: Sequence[State], older_than: float | None = None) -> int:
        """Delete final-state jobs in ``states``; how many were deleted.

        With ``older_than``, only jobs that finished more than ``older_than`` seconds before
        the store's now (a job with no ``finished_at`` counts as finished at 0). An age,
        not a time: the caller's clock must not decide what a server-time store deletes.
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


class Telemetry(Capability):
    """Per-minute counts of finished attempts and a registry of live workers."""

    name = "telemetry"
    lacking = "does not keep job history or a worker registry"

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

    @abc.abstractmethod
    async def register_worker(self, info: WorkerInfo, ttl: float) -> None:
        """Record or refresh a live worker; it drops off ``ttl`` seconds after its last call."""

    @abc.abstractmethod
    async def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker that is shutting down."""

    @abc.abstractmethod
    async def workers(self) -> list[WorkerInfo]:
        """Live workers."""


class Transactions(Capability):
    """Enqueue through the caller's own database connection, inside its transaction."""

    name = "transactions"
    lacking = "cannot join your database transaction"
    instead = "the postgresql:// database that connection belongs to"

    @abc.abstractmethod
    def enqueue_in(self, connection: object, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """Store jobs through ``connection``, inside its open transaction.

        The jobs exist only if that transaction commits.
        """

    @abc.abstractmethod
    async def enqueue_in_async(
        self, connection: object, jobs: Sequence[NewJob]
    ) -> list[EnqueueResult]:
        """`enqueue_in` for an async connection (or session)."""


class Progress(Capability):
    """Keeping the latest progress report of a running job (``current_job().progress``)."""

    name = "progress"
    lacking = "does not keep job progress"

    @abc.abstractmethod
    async def report_progress(
        self, lease: Lease, done: float, total: float | None, note: str | None
    ) -> bool:
        """Keep this report on the leased job in place of the last one.

        Stored with the job's current ``attempts`` and the store's own now, so `get` returns
        it as ``JobRecord.progress`` (`conveyor.attempts.JobProgress`). True when kept; with
        a lease that is not current nothing changes and the result is False (not counted as
        fenced: a late report is harmless). The values come checked
        (`conveyor.attempts.check_progress`).
        """


#: Every capability, in the order `Backend.capabilities` lists them.
CAPABILITIES: tuple[type[Capability], ...] = (
    Limits,
    Scheduling,
    Admin,
    Telemetry,
    Transactions,
    Progress,
)
