"""`Database`: one handle's way into PostgreSQL, shared by `PostgresBackend` and its parts.

The backend's core verbs and each of its capability parts (limits, scheduling, admin,
telemetry, transactions) hold the same `Database`: the parsed URL, the clock, the pools,
the LISTEN connection and the statement runners live here once, and no part calls back
into the backend.

Async pools and the listener belong to the event loop that made them; a handle used from a
later ``asyncio.run()`` gets fresh ones (the old loop's objects are dropped with it). The
sync pool serves every thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg.rows import dict_row

from conveyor.backends.postgres import migrations, sql
from conveyor.backends.postgres.connection import Target, parse_url, translate
from conveyor.backends.postgres.listener import Listener
from conveyor.backends.postgres.pools import AsyncConn, AsyncPool, SyncConn, SyncPool
from conveyor.backends.postgres.records import raw_json
from conveyor.backends.postgres.rows import EnqueuePlan, Row
from conveyor.clock import Clock, SystemClock
from conveyor.errors import BackendError
from conveyor.job import NewJob


class Database:
    """The connections, clock and statement runners of one `PostgresBackend` handle.

    Each statement runs on an autocommit connection. Time is the server's clock, unless a
    clock is injected (tests), whose time is then passed with every statement (`now`).
    """

    def __init__(self, url: str, clock: Clock) -> None:
        self.url = url
        self.clock = clock
        self.target: Target = parse_url(url)
        #: The blocks of ``queries.sql`` for this schema.
        self.q = sql.queries(self.target.schema)
        #: The NOTIFY channel, or ``None`` when listening is off (nobody would hear it).
        self.channel = self.target.channel if self.target.listen else None
        self._server_time = isinstance(clock, SystemClock)
        self._pool: AsyncPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: Listener | None = None
        self._sync: SyncPool | None = None
        self._sync_lock = threading.Lock()
        self.closed = False

    def now(self) -> float | None:
        """The ``now`` parameter of every statement: ``None`` means the server's clock."""
        return None if self._server_time else self.clock.now()

    def plan(self, jobs: Sequence[NewJob]) -> EnqueuePlan:
        """An enqueue of ``jobs`` at this handle's now, notifying its channel."""
        return EnqueuePlan(jobs, self.now(), self.channel)

    # -- lifecycle -----------------------------------------------------------------------
    async def prepare(self, *, migrate: bool) -> str:
        """Check (or, with ``migrate``, upgrade) the schema, then bind to the running loop."""
        report = await self._check_schema(migrate=migrate)
        await self._bind_loop()
        return report

    async def _check_schema(self, *, migrate: bool) -> str:
        self._check_open()
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.target.conninfo, **self.target.connect_kwargs()
            )
        except (psycopg.Error, OSError) as exc:
            raise translate(exc, self.target) from exc
        try:
            return await migrations.ensure(conn, self.target, migrate=migrate)
        except psycopg.Error as exc:
            raise translate(exc, self.target) from exc
        finally:
            await conn.close()

    def _check_open(self) -> None:
        if self.closed:
            raise BackendError(
                f"PostgresBackend({self.target.where}) is closed; create a new backend (or clone())"
            )

    async def _bind_loop(self) -> AsyncPool:
        """The async pool for the running event loop (a new loop gets new connections)."""
        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop is not loop:
            self._pool = AsyncPool(self.target)
            await self._pool.open()
            self._loop = loop
            self._listener = Listener(self.target)
        return self._pool

    async def listener(self) -> Listener:
        """The running loop's LISTEN connection (started by whoever waits first)."""
        await self._bind_loop()
        assert self._listener is not None
        return self._listener

    async def close(self) -> None:
        """Close every connection. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        if self._listener is not None:
            await self._listener.close()
        if self._pool is not None and self._loop is asyncio.get_running_loop():
            await self._pool.close()
        self._pool = None
        with self._sync_lock:
            sync, self._sync = self._sync, None
        if sync is not None:
            await asyncio.to_thread(sync.close)

    # -- running statements --------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def conn(self) -> AsyncIterator[AsyncConn]:
        """A pooled connection of the running loop; driver errors come out as ours."""
        self._check_open()
        pool = await self._bind_loop()
        async with pool.connection() as conn:
            yield conn

    async def rows(self, name: str, params: dict[str, Any], text: str | None = None) -> list[Row]:
        """Run ``queries.sql``'s block ``name`` (or ``text``, built from it); its rows."""
        async with self.conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            raw_json(cur)
            await cur.execute(text or self.q[name], params)
            return await cur.fetchall() if cur.description else []

    async def file_rows(self, file: str, name: str, params: dict[str, Any]) -> list[Row]:
        """Run the block ``name`` of the query file ``file`` (e.g. ``limits.sql``)."""
        return await self.rows(name, params, sql.queries(self.target.schema, file)[name])

    @contextlib.contextmanager
    def sync_conn(self) -> Iterator[SyncConn]:
        """A connection of the sync pool, from any thread (opened, schema checked, on first use)."""
        with self._sync_pool().connection() as conn:
            yield conn

    def _sync_pool(self) -> SyncPool:
        self._check_open()
        with self._sync_lock:
            if self._sync is None:
                # Check (or create) the schema once, as open() does for the async side. The
                # check is async code; a short-lived thread runs it, so this works whether
                # or not the calling thread already runs an event loop.
                with ThreadPoolExecutor(1, thread_name_prefix="conveyor-pg-check") as pool:
                    pool.submit(asyncio.run, self._check_schema(migrate=False)).result()
                self._sync = SyncPool(self.target)
            return self._sync
