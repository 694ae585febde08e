"""`PostgresBackend`: the Backend protocol on PostgreSQL, with psycopg 3."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg.rows import dict_row

from conveyor.backends.base import Backend, RecoveryReport, claim_waiting, poison_pill_reason
from conveyor.backends.postgres import migrations, sql
from conveyor.backends.postgres.admin import Admin
from conveyor.backends.postgres.batching import AckBatcher
from conveyor.backends.postgres.connection import Target, parse_url, translate
from conveyor.backends.postgres.limits import PostgresLimits
from conveyor.backends.postgres.listener import Listener
from conveyor.backends.postgres.operations import PostgresOperations
from conveyor.backends.postgres.pools import AsyncConn, AsyncPool, SyncPool
from conveyor.backends.postgres.records import decode_claimed, raw_json, record_or_placeholder
from conveyor.backends.postgres.rows import EnqueuePlan, Row, run_order, to_json
from conveyor.backends.postgres.scheduling import PostgresScheduling
from conveyor.backends.postgres.transactional import async_connection, sync_connection
from conveyor.backends.unreadable import UnreadableRecord
from conveyor.clock import SYSTEM_CLOCK, Clock, SystemClock
from conveyor.errors import BackendError
from conveyor.job import EnqueueResult, Failure, JobRecord, Lease, NewJob, Routing

log = logging.getLogger("conveyor.postgres")

#: Claim rounds one call may spend quarantining unreadable rows before it answers empty.
QUARANTINE_ROUNDS = 10

#: Stands for the recovery count in the poison-pill message until the SQL fills it in.
_MARKER = "987654321"


class PostgresBackend(Admin, PostgresOperations, PostgresLimits, PostgresScheduling, Backend):
    """Jobs in PostgreSQL (`postgresql://user@host/db?schema=conveyor`).

    Async methods share one `psycopg_pool.AsyncConnectionPool`; `enqueue_sync` and
    `get_sync` use a small sync pool, callable from any thread. Each protocol call is one
    statement on an autocommit connection. Time is the server's clock, unless a clock is
    injected (tests), whose time is then passed with every statement.
    """

    def __init__(self, url: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.url = url
        self.clock = clock
        self.target: Target = parse_url(url)
        self.q = sql.queries(self.target.schema)
        self._server_time = isinstance(clock, SystemClock)
        self._channel = self.target.channel if self.target.listen else None
        self._pool: AsyncPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: Listener | None = None
        self._acks: AckBatcher | None = None
        self._sync: SyncPool | None = None
        self._sync_lock = threading.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False

    def clone(self) -> PostgresBackend:
        """A new, unopened handle on the same database, schema and clock."""
        return PostgresBackend(self.url, clock=self.clock)

    def __repr__(self) -> str:
        return f"PostgresBackend({self.target.where})"

    def _now(self) -> float | None:
        return None if self._server_time else self.clock.now()

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        """Connect, check the schema version (creating an absent schema), start the pool."""
        await self._prepare(migrate=False)

    async def migrate(self) -> str:
        """Create or upgrade the schema (forward-only, in one transaction), then open."""
        return await self._prepare(migrate=True)

    async def _prepare(self, *, migrate: bool) -> str:
        report = await self._check_schema(migrate=migrate)
        await self._bind_loop()
        return report

    async def _check_schema(self, *, migrate: bool) -> str:
        if self._closed:
            raise BackendError(f"{self!r} is closed; create a new backend (or clone())")
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.target.conninfo, **self.target.connect_kwargs()
            )
        except (psycopg.Error, OSError) as exc:
            raise translate(exc, self.target) from exc
        try:
            report = await migrations.ensure(conn, self.target, migrate=migrate)
        except psycopg.Error as exc:
            raise translate(exc, self.target) from exc
        finally:
            await conn.close()
        return report

    async def _bind_loop(self) -> AsyncPool:
        """The async pool for the running event loop (a new loop gets new connections)."""
        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop is not loop:
            # Pools, listeners and batches belong to the loop that made them; a handle used
            # from a later asyncio.run() starts afresh (the old loop's objects are dropped).
            self._pool = AsyncPool(self.target)
            await self._pool.open()
            self._loop = loop
            self._listener = Listener(self.target)
            self._acks = AckBatcher(self._complete_batch)
        return self._pool

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[AsyncConn]:
        if self._closed:
            raise BackendError(f"{self!r} is closed; create a new backend (or clone())")
        pool = await self._bind_loop()
        async with pool.connection() as conn:
            yield conn

    async def _rows(self, name: str, params: dict[str, Any], text: str | None = None) -> list[Row]:
        async with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            raw_json(cur)
            await cur.execute(text or self.q[name], params)
            return await cur.fetchall() if cur.description else []

    async def close(self) -> None:
        """Close every connection. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._acks is not None and self._loop is asyncio.get_running_loop():
            await self._acks.close()
        if self._listener is not None:
            await self._listener.close()
        if self._pool is not None and self._loop is asyncio.get_running_loop():
            await self._pool.close()
        self._pool = None
        with self._sync_lock:
            sync, self._sync = self._sync, None
        if sync is not None:
            await asyncio.to_thread(sync.close)

    def _sync_pool(self) -> SyncPool:
        if self._closed:
            raise BackendError(f"{self!r} is closed; create a new backend (or clone())")
        with self._sync_lock:
            if self._sync is None:
                # Check (or create) the schema once, as open() does for the async side. The
                # check is async code; a short-lived thread runs it, so this works whether
                # or not the calling thread already runs an event loop.
                with ThreadPoolExecutor(1, thread_name_prefix="conveyor-pg-check") as pool:
                    pool.submit(asyncio.run, self._check_schema(migrate=False)).result()
                self._sync = SyncPool(self.target)
            return self._sync

    # -- producing -----------------------------------------------------------------------
    async def enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """Store jobs atomically, in order, and wake idle workers on commit."""
        if not jobs:
            return []
        async with self._conn() as conn:
            return await _enqueue_async(conn, self.q, self._plan(jobs))

    def enqueue_sync(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """`enqueue` from code without an event loop (any thread)."""
        if not jobs:
            return []
        plan = self._plan(jobs)
        with self._sync_pool().connection() as conn:
            return _enqueue_sync(conn, self.q, plan)

    def enqueue_in(self, connection: object, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """Store jobs inside the caller's open transaction (see `transactional`)."""
        conn = sync_connection(connection)
        if not jobs:
            return []
        try:
            return _enqueue_sync(conn, self.q, self._plan(jobs))
        except psycopg.Error as exc:
            raise translate(exc, self.target) from exc

    async def enqueue_in_async(
        self, connection: object, jobs: Sequence[NewJob]
    ) -> list[EnqueueResult]:
        """`enqueue_in` on an async connection or session."""
        conn = await async_connection(connection)
        if not jobs:
            return []
        try:
            return await _enqueue_async(conn, self.q, self._plan(jobs))
        except psycopg.Error as exc:
            raise translate(exc, self.target) from exc

    def _plan(self, jobs: Sequence[NewJob]) -> EnqueuePlan:
        return EnqueuePlan(jobs, self._now(), self._channel)

    # -- working -------------------------------------------------------------------------
    def _claim_sql(self, routing: Routing) -> tuple[str, dict[str, Any]]:
        clause, params = sql.routing_clause(routing)
        return sql.splice(self.q["claim"], routing=clause), params

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
        """Lease up to ``limit`` matching jobs, in run order (due scheduled jobs included)."""
        claimed = asyncio.ensure_future(self._claim(worker_id, routing, limit, lease_seconds))
        try:
            return await asyncio.shield(claimed)
        except asyncio.CancelledError:
            # The statement may still commit; give its jobs straight back rather than leave
            # them leased to nobody until the reaper sees the leases expire.
            claimed.add_done_callback(self._release_orphans)
            raise

    async def _claim(
        self, worker_id: str, routing: Routing, limit: int, lease_seconds: float
    ) -> list[JobRecord]:
        now = self._now()
        if limit <= 0:
            await self._rows("promote_due", {"now": now})
            return []
        statement, params = self._claim_sql(routing)
        params.update(
            now=now,
            limit=limit,
            token=secrets.token_hex(16),
            lease=lease_seconds,
            worker_id=worker_id,
        )
        records: list[JobRecord] = []
        rows: list[Row] = []
        async with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            raw_json(cur)
            # Each round that finds only unreadable rows quarantines them and claims again:
            # an empty answer must mean "no work" (a burst worker stops on it), not "the
            # first rows in line were damaged".
            for _ in range(QUARANTINE_ROUNDS):
                rows = await self._claim_rows(cur, statement, params)
                records, damaged = decode_claimed(rows)
                if not damaged:
                    break
                if not await self._quarantine(cur, damaged, params["token"]) or records:
                    break
        return run_order(records, {r["id"]: r["seq"] for r in rows if r["id"] is not None})

    async def _claim_rows(
        self, cur: psycopg.AsyncCursor[Row], statement: str, params: dict[str, Any]
    ) -> list[Row]:
        for _ in range(3):
            await cur.execute(statement, params)
            rows = await cur.fetchall()
            if not rows[0]["due"]:
                return rows
            # A scheduled job fell due: make it ready so it takes its place in the order.
            await cur.execute(self.q["promote_due"], {"now": params["now"]})
        return []  # jobs keep falling due this instant; the next claim takes them

    async def _quarantine(
        self, cur: psycopg.AsyncCursor[Row], damaged: list[UnreadableRecord], token: str
    ) -> bool:
        """Dead-letter claimed jobs that cannot be read, keeping their stored content.

        The claim has committed: a failure here is logged, never raised, so the jobs that
        could be read still run. A job left leased by such a failure is recovered once its
        lease expires and quarantined by the next claim that takes it.
        """
        for exc in damaged:
            log.error("quarantining job %s: %s", exc.job_id, exc)
        try:
            await cur.execute(
                self.q["quarantine"],
                {
                    "now": self._now(),
                    "token": token,
                    "ids": [exc.job_id for exc in damaged],
                    "errors": [str(exc) for exc in damaged],
                },
            )
        except psycopg.Error as exc:
            log.warning("could not quarantine %d unreadable job(s): %s", len(damaged), exc)
            return False
        return True

    def _release_orphans(self, claimed: asyncio.Future[list[JobRecord]]) -> None:
        if claimed.cancelled() or claimed.exception() is not None or not claimed.result():
            return
        leases = [Lease(j.id, j.lease_token or "") for j in claimed.result()]
        task = asyncio.ensure_future(self._release_all(leases))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _release_all(self, leases: list[Lease]) -> None:
        for lease in leases:
            await self.release(lease)

    async def extend(self, leases: Sequence[Lease], lease_seconds: float) -> list[bool]:
        """Push held leases forward; ``False`` for each lease no longer held."""
        if not leases:
            return []
        rows = await self._rows(
            "extend",
            {
                "now": self._now(),
                "lease": lease_seconds,
                "ids": [x.job_id for x in leases],
                "tokens": [x.token for x in leases],
            },
        )
        held = {r["id"] for r in rows}
        return [x.job_id in held for x in leases]

    async def complete(self, lease: Lease, result: bytes | None) -> bool:
        """Mark the job succeeded (acks of concurrent jobs share one statement)."""
        await self._bind_loop()
        assert self._acks is not None
        return await self._acks.submit(lease, result)

    async def _complete_batch(
        self, acks: Sequence[tuple[Lease, bytes | None]]
    ) -> set[tuple[str, str]]:
        rows = await self._rows(
            "complete",
            {
                "now": self._now(),
                "ids": [lease.job_id for lease, _ in acks],
                "tokens": [lease.token for lease, _ in acks],
                "results": [result for _, result in acks],
            },
        )
        return {(r["id"], r["token"]) for r in rows}

    async def fail(self, lease: Lease, failure: Failure) -> bool:
        """Schedule a retry, or dead-letter; ``False`` if the lease was lost."""
        rows = await self._rows(
            "fail",
            {
                "now": self._now(),
                "channel": self._channel,
                "id": lease.job_id,
                "token": lease.token,
                "retry_in": failure.retry_in,
                "error": failure.error,
                "traceback": failure.traceback,
            },
        )
        return bool(rows[0]["held"])

    async def release(self, lease: Lease) -> bool:
        """Back to ready at once, attempt returned; ``False`` if the lease was lost."""
        rows = await self._rows(
            "release",
            {
                "now": self._now(),
                "channel": self._channel,
                "id": lease.job_id,
                "token": lease.token,
            },
        )
        return bool(rows[0]["held"])

    async def defer(
        self, lease: Lease, delay: float, headers: dict[str, Any] | None = None
    ) -> bool:
        """Back to wait ``delay`` seconds, attempt returned; ``False`` if the lease was lost."""
        text = None if headers is None else to_json(headers, f"the headers of job {lease.job_id}")
        rows = await self._rows(
            "defer",
            {
                "now": self._now(),
                "channel": self._channel,
                "id": lease.job_id,
                "token": lease.token,
                "delay": delay,
                "headers": text,
            },
        )
        return bool(rows[0]["held"])

    async def recover(self, max_recoveries: int) -> RecoveryReport:
        """Expired leases back to ready, or dead once out of recoveries; safe concurrently."""
        rows = await self._rows(
            "recover",
            {
                "now": self._now(),
                "channel": self._channel,
                "max_recoveries": max_recoveries,
                "reason": poison_pill_reason(int(_MARKER)),
                "marker": _MARKER,
            },
        )
        return RecoveryReport(int(rows[0]["recovered"]), int(rows[0]["dead"]))

    async def wait_for_work(self, routing: Routing, timeout: float) -> None:
        """Sleep until matching work may be ready, or ``timeout`` seconds pass.

        Wakes on NOTIFY within milliseconds of a commit; without LISTEN it polls every
        ``poll_interval``. Returns at once when matching work is ready or due; jobs of paused
        queues do not count (`resume_queue` sends the NOTIFY that wakes the wait).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        await self._bind_loop()
        listener = self._listener
        assert listener is not None
        # Listen and register before asking: a commit after the question still wakes us.
        waiter = listener.add(routing) if await listener.start() else None
        clause, params = sql.routing_clause(routing)
        probe = sql.splice(self.q["probe"], routing=clause)
        try:
            while True:
                [row] = await self._rows("probe", {**params, "now": self._now()}, probe)
                due_in = row["due_in"]
                if row["ready"] or (due_in is not None and due_in <= 0):
                    return
                left = deadline - loop.time()
                if due_in is not None:
                    left = min(left, due_in)
                if left <= 0:
                    return
                if waiter is not None and listener.listening:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(waiter.event.wait(), left)
                    return
                await asyncio.sleep(min(self.target.poll_interval, left))
        finally:
            if waiter is not None:
                listener.remove(waiter)

    # -- reading (sync) ------------------------------------------------------------------
    def get_sync(self, job_id: str) -> JobRecord | None:
        """`get` from code without an event loop (any thread)."""
        with self._sync_pool().connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            raw_json(cur)
            cur.execute(self.q["get"], {"id": job_id})
            row = cur.fetchone()
        return None if row is None else record_or_placeholder(row)


def _enqueue_sync(
    conn: psycopg.Connection[Any], q: sql.Queries, plan: EnqueuePlan
) -> list[EnqueueResult]:
    with conn.cursor() as cur:
        while True:
            cur.execute(q["enqueue"], plan.params())
            holders: list[tuple[Any, ...]] = []
            keys = plan.absorb(cur.fetchall())
            if keys:
                cur.execute(q["unique_holders"], {"keys": keys})
                holders = cur.fetchall()
            if plan.settle(holders):
                return plan.done()


async def _enqueue_async(conn: AsyncConn, q: sql.Queries, plan: EnqueuePlan) -> list[EnqueueResult]:
    async with conn.cursor() as cur:
        while True:
            await cur.execute(q["enqueue"], plan.params())
            holders: list[tuple[Any, ...]] = []
            keys = plan.absorb(await cur.fetchall())
            if keys:
                await cur.execute(q["unique_holders"], {"keys": keys})
                holders = await cur.fetchall()
            if plan.settle(holders):
                return plan.done()
