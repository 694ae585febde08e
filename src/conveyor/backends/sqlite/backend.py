"""`SqliteBackend`: the Backend protocol on one SQLite file shared by several processes."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from conveyor.backends.base import Backend, RecoveryReport, claim_waiting
from conveyor.backends.sqlite import sql
from conveyor.backends.sqlite.connection import Target, connect, parse_url
from conveyor.backends.sqlite.group_commit import GroupCommit
from conveyor.backends.sqlite.limits import SqliteLimits
from conveyor.backends.sqlite.operations import SqliteOperations
from conveyor.backends.sqlite.scheduling import SqliteScheduling
from conveyor.backends.sqlite.store import Store
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.errors import BackendError
from conveyor.job import (
    EnqueueResult,
    Failure,
    JobQuery,
    JobRecord,
    Lease,
    NewJob,
    QueueStats,
    Routing,
    State,
    WorkerInfo,
)

T = TypeVar("T")

#: How often `wait_for_work` asks SQLite whether another process committed something.
POLL_INTERVAL = 0.02


class SqliteBackend(SqliteScheduling, SqliteLimits, SqliteOperations, Backend):
    """Jobs in one SQLite file (`sqlite:///path.db`), safe for several processes at once.

    The file runs in WAL mode and every write is a ``BEGIN IMMEDIATE`` transaction, so
    readers never block and writers queue on SQLite's busy timeout instead of failing.
    Async methods run on a single thread that owns this handle's connection, so a slow disk
    never stalls the event loop; `enqueue_sync` and `get_sync` use a second connection
    behind a lock, callable from any thread. The hot writes (enqueue, claim and the acks)
    that queue up while that thread is busy share one transaction (`group_commit.py`).
    """

    def __init__(self, url: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.url = url
        self.clock = clock
        self.target: Target = parse_url(url)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conveyor-sqlite")
        self._store: Store | None = None  # touched only on the executor's thread
        self._commits = GroupCommit(self._executor, self._open_store)
        self._sync_store: Store | None = None
        self._sync_lock = threading.Lock()
        self._closed = False
        # Bumped after this handle's own writes, which PRAGMA data_version does not report
        # to the connection that made them.
        self._writes = 0

    def clone(self) -> SqliteBackend:
        """A new, unopened handle on the same file and clock."""
        return SqliteBackend(self.url, clock=self.clock)

    def __repr__(self) -> str:
        return f"SqliteBackend({self.url!r})"

    # -- lifecycle -----------------------------------------------------------------------
    def _open_store(self) -> Store:
        if self._store is None:
            self._store = Store(connect(self.target), self.clock, self.target.path)
        return self._store

    async def _run(self, fn: Callable[[Store], T]) -> T:
        if self._closed:
            raise BackendError(f"{self!r} is closed; create a new backend (or clone())")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._open_store()))

    async def _run_write(self, fn: Callable[[Store], T]) -> T:
        try:
            return await self._run(fn)
        finally:
            self._writes += 1

    def _grouped(self, fn: Callable[[Store], T]) -> asyncio.Future[T]:
        """``fn`` as a write that may share its transaction with others (group commit)."""
        if self._closed:
            raise BackendError(f"{self!r} is closed; create a new backend (or clone())")
        future: asyncio.Future[T] = self._commits.submit(fn)
        return future

    async def _grouped_write(self, fn: Callable[[Store], T]) -> T:
        """`_grouped`, then note a write other waiters of this handle should look at."""
        try:
            return await self._grouped(fn)
        finally:
            self._writes += 1

    async def open(self) -> None:
        """Open the file (creating its directory), switch on WAL and migrate the schema."""
        await self._run(lambda store: None)

    async def close(self) -> None:
        """Close both connections and stop the thread. Safe to call twice."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close_store)
        self._closed = True
        self._executor.shutdown(wait=False)
        with self._sync_lock:
            if self._sync_store is not None:
                self._sync_store.close()
                self._sync_store = None

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _sync(self) -> Store:
        """The sync connection; call with ``_sync_lock`` held."""
        if self._closed:
            raise BackendError(f"{self!r} is closed; create a new backend (or clone())")
        if self._sync_store is None:
            conn = connect(self.target, check_same_thread=False)
            self._sync_store = Store(conn, self.clock, self.target.path)
        return self._sync_store

    # -- producing -----------------------------------------------------------------------
    async def enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """Store jobs atomically, in order."""
        return await self._grouped_write(lambda s: s.enqueue(jobs))

    def enqueue_sync(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """`enqueue` from code without an event loop (any thread)."""
        with self._sync_lock:
            try:
                return self._sync().enqueue(jobs)
            finally:
                self._writes += 1

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
        """Lease up to ``limit`` matching jobs in run order, waiting up to ``wait`` seconds."""
        if wait <= 0:
            return await self._claim_now(worker_id, routing, limit, lease_seconds)
        return await claim_waiting(
            self,
            lambda: self._claim_now(worker_id, routing, limit, lease_seconds),
            lambda seconds: self.wait_for_work(routing, seconds),
            wait,
        )

    async def _claim_now(
        self, worker_id: str, routing: Routing, limit: int, lease_seconds: float
    ) -> list[JobRecord]:
        """Lease up to ``limit`` matching jobs, in run order."""
        claimed = self._grouped(lambda s: s.claim(worker_id, routing, limit, lease_seconds))
        try:
            return await asyncio.shield(claimed)
        except asyncio.CancelledError:
            # The claim still commits on its thread; hand its jobs straight back rather than
            # leave them leased to nobody until the reaper finds the leases expired.
            claimed.add_done_callback(self._release_orphans)
            raise

    def _release_orphans(self, claimed: asyncio.Future[list[JobRecord]]) -> None:
        if claimed.cancelled() or claimed.exception() is not None or not claimed.result():
            return
        leases = [Lease(j.id, j.lease_token or "") for j in claimed.result()]
        with contextlib.suppress(RuntimeError):  # closed meanwhile: the reaper recovers them
            self._executor.submit(lambda: [self._open_store().release(x) for x in leases])

    async def extend(self, leases: Sequence[Lease], lease_seconds: float) -> list[bool]:
        """Push held leases forward."""
        return await self._run(lambda s: s.extend(leases, lease_seconds))

    async def complete(self, lease: Lease, result: bytes | None) -> bool:
        """Mark the job succeeded; ``False`` if the lease was lost."""
        return await self._grouped(lambda s: s.complete(lease, result))

    async def fail(self, lease: Lease, failure: Failure) -> bool:
        """Retry later or dead-letter; ``False`` if the lease was lost."""
        return await self._grouped_write(lambda s: s.fail(lease, failure))

    async def release(self, lease: Lease) -> bool:
        """Back to ready at once, attempt returned; ``False`` if the lease was lost."""
        return await self._grouped_write(lambda s: s.release(lease))

    async def defer(
        self, lease: Lease, delay: float, headers: dict[str, Any] | None = None
    ) -> bool:
        """Back to wait ``delay`` seconds, attempt returned; ``False`` if the lease was lost."""
        return await self._grouped_write(lambda s: s.defer(lease, delay, headers))

    async def recover(self, max_recoveries: int) -> RecoveryReport:
        """Return expired leases to ready, or dead once out of recoveries."""
        return await self._run_write(lambda s: s.recover(max_recoveries))

    async def wait_for_work(self, routing: Routing, timeout: float) -> None:
        """Sleep until matching work may be ready, or ``timeout`` seconds pass.

        Other processes cannot signal this one, so it polls ``PRAGMA data_version`` (a
        cheap read that changes when any other connection commits) every `POLL_INTERVAL`
        and only then asks whether matching work is ready or a scheduled job is due. Jobs of
        paused queues count for neither; `resume_queue` is a write, so it wakes waiters.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        clause, params = sql.routing_clause(routing)
        probe = sql.splice(sql.query("wait_probe"), routing=clause)
        version: int | None = None
        writes = -1
        while True:
            if writes != self._writes:
                writes = self._writes
                version = await self._run(lambda s: s.data_version())
                ready, next_due = await self._run(lambda s: s.probe(probe, params))
                if ready:
                    return
                if next_due is not None:
                    deadline = min(deadline, loop.time() + next_due - self.clock.now())
            left = deadline - loop.time()
            if left <= 0:
                return
            await asyncio.sleep(min(POLL_INTERVAL, left))
            if await self._run(lambda s: s.data_version()) != version:
                writes = -1  # something changed: probe again

    # -- reading -------------------------------------------------------------------------
    async def get(self, job_id: str) -> JobRecord | None:
        """One job by id, or ``None``."""
        return await self._run(lambda s: s.get(job_id))

    def get_sync(self, job_id: str) -> JobRecord | None:
        """`get` from code without an event loop (any thread)."""
        with self._sync_lock:
            return self._sync().get(job_id)

    async def query(self, query: JobQuery) -> list[JobRecord]:
        """Jobs matching ``query``, newest first."""
        return await self._run(lambda s: s.query(query))

    async def stats(self) -> list[QueueStats]:
        """Job counts per queue and priority, by state."""
        return await self._run(lambda s: s.stats())

    async def counters(self) -> dict[str, int]:
        """The fenced / recovered / poisoned totals."""
        return await self._run(lambda s: s.counters())

    # -- repairing -----------------------------------------------------------------------
    async def retry_dead(self, job_ids: Sequence[str] | None = None) -> int:
        """Dead jobs back to ready with fresh attempts."""
        return await self._run_write(lambda s: s.retry_dead(job_ids))

    async def cancel(self, job_id: str) -> bool:
        """Cancel an active job; ``False`` if it was already final (or unknown)."""
        return await self._run(lambda s: s.cancel(job_id))

    async def purge(self, states: Sequence[State], older_than: float | None = None) -> int:
        """Delete final-state jobs in ``states`` (finished over ``older_than`` s ago, if given)."""
        return await self._run(lambda s: s.purge(states, older_than))

    # -- worker registry -------------------------------------------------------------------
    async def register_worker(self, info: WorkerInfo, ttl: float) -> None:
        """Record or refresh a live worker."""
        await self._run(lambda s: s.register_worker(info, ttl))

    async def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker."""
        await self._run(lambda s: s.unregister_worker(worker_id))

    async def workers(self) -> list[WorkerInfo]:
        """Live workers."""
        return await self._run(lambda s: s.workers())
