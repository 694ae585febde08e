"""`SqliteBackend`: the Backend protocol on one SQLite file shared by several processes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor.backends.base import Backend, RecoveryReport, claim_waiting
from conveyor.backends.sqlite.admin import SqliteAdmin
from conveyor.backends.sqlite.connection import Target, parse_url
from conveyor.backends.sqlite.limits import SqliteLimits
from conveyor.backends.sqlite.progress import SqliteProgress
from conveyor.backends.sqlite.runner import Runner
from conveyor.backends.sqlite.scheduling import SqliteScheduling
from conveyor.backends.sqlite.telemetry import SqliteTelemetry
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.job import EnqueueResult, Failure, JobRecord, Lease, NewJob, Routing


class SqliteBackend(Backend):
    """Jobs in one SQLite file (`sqlite:///path.db`), safe for several processes at once.

    The file runs in WAL mode and every write is a ``BEGIN IMMEDIATE`` transaction, so
    readers never block and writers queue on SQLite's busy timeout instead of failing.
    Async methods run on a single thread that owns this handle's connection, so a slow disk
    never stalls the event loop; `enqueue_sync` and `get_sync` use a second connection
    behind a lock, callable from any thread. The hot writes (enqueue, claim and the acks)
    that queue up while that thread is busy share one transaction (`group_commit.py`).

    The core verbs live here; limits, scheduling, admin, telemetry and progress are parts
    built on the same `Runner` (the handle's thread and connections), handed to `Backend`.
    """

    def __init__(self, url: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.url = url
        self.clock = clock
        self.target: Target = parse_url(url)
        self._runner = runner = Runner(repr(self), self.target, clock)
        super().__init__(
            limits=SqliteLimits(runner),
            scheduling=SqliteScheduling(runner),
            admin=SqliteAdmin(runner),
            telemetry=SqliteTelemetry(runner),
            progress=SqliteProgress(runner),
        )

    def clone(self) -> SqliteBackend:
        """A new, unopened handle on the same file and clock."""
        return SqliteBackend(self.url, clock=self.clock)

    def __repr__(self) -> str:
        return f"SqliteBackend({self.url!r})"

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        """Open the file (creating its directory), switch on WAL and migrate the schema."""
        await self._runner.run(lambda store: None)

    async def close(self) -> None:
        """Close both connections and stop the thread. Safe to call twice."""
        await self._runner.close()

    # -- producing -----------------------------------------------------------------------
    async def enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """Store jobs atomically, in order."""
        return await self._runner.grouped_write(lambda s: s.enqueue(jobs))

    def enqueue_sync(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """`enqueue` from code without an event loop (any thread)."""
        return self._runner.sync_write(lambda s: s.enqueue(jobs))

    # -- working -------------------------------------------------------------------------
    async def claim(
        self,
        worker_id: str,
        routing: Routing,
        limit: int,
        lease_seconds: float,
        *,
        wait: float = 0.0,
    ) -> list[JobRecord]:
        """Lease up to ``limit`` matching jobs in run order, waiting up to ``wait`` seconds.

        Each attempt is one group-committed write, shielded by `base.claim_waiting`: a
        caller cancelled meanwhile gets its jobs released before the cancellation goes on.
        Between attempts it sleeps in `Runner.sleep_until_work`.
        """
        runner = self._runner
        return await claim_waiting(
            self,
            lambda: runner.grouped(lambda s: s.claim(worker_id, routing, limit, lease_seconds)),
            lambda seconds: runner.sleep_until_work(routing, seconds),
            wait,
            limit=limit,
        )

    async def extend(self, leases: Sequence[Lease], lease_seconds: float) -> list[bool]:
        """Push held leases forward."""
        return await self._runner.run(lambda s: s.extend(leases, lease_seconds))

    async def complete(self, lease: Lease, result: bytes | None) -> bool:
        """Mark the job succeeded; ``False`` if the lease was lost."""
        return await self._runner.grouped(lambda s: s.complete(lease, result))

    async def fail(self, lease: Lease, failure: Failure) -> bool:
        """Retry later or dead-letter; ``False`` if the lease was lost."""
        return await self._runner.grouped_write(lambda s: s.fail(lease, failure))

    async def release(self, lease: Lease) -> bool:
        """Back to ready at once, attempt returned; ``False`` if the lease was lost."""
        return await self._runner.grouped_write(lambda s: s.release(lease))

    async def defer(
        self, lease: Lease, delay: float, headers: dict[str, Any] | None = None
    ) -> bool:
        """Back to wait ``delay`` seconds, attempt returned; ``False`` if the lease was lost."""
        return await self._runner.grouped_write(lambda s: s.defer(lease, delay, headers))

    async def recover(self, max_recoveries: int) -> RecoveryReport:
        """Return expired leases to ready, or dead once out of recoveries."""
        return await self._runner.run_write(lambda s: s.recover(max_recoveries))

    # -- reading -------------------------------------------------------------------------
    async def get(self, job_id: str) -> JobRecord | None:
        """One job by id, or ``None``."""
        return await self._runner.run(lambda s: s.get(job_id))

    def get_sync(self, job_id: str) -> JobRecord | None:
        """`get` from code without an event loop (any thread)."""
        return self._runner.sync(lambda s: s.get(job_id))
