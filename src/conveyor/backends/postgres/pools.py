"""The backend's connections: an async pool for workers, a small sync pool for producers.

Both check a connection out without a round trip (`connection.looks_closed`), and both fail
fast during an outage: once a call finds the server gone, later calls first try one direct
connection (refused at once while the server is down) instead of waiting out the pool
timeout, and the first success clears the flag. Dead pooled connections are closed as they
come out, so the pools refill with fresh ones after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from conveyor.backends.postgres.connection import (
    Target,
    is_connection_error,
    looks_closed,
    translate,
)
from conveyor.errors import BackendUnavailable

AsyncConn = psycopg.AsyncConnection[Any]
SyncConn = psycopg.Connection[Any]

#: Connections in the sync pool: producers enqueue one statement at a time.
SYNC_POOL_SIZE = 4


def _exhausted(target: Target, size: int) -> BackendUnavailable:
    return BackendUnavailable(
        f"all {size} pooled connections to PostgreSQL at {target.where} stayed busy for "
        f"{target.pool_timeout:g}s; raise pool_size or pool_timeout in the URL"
    )


class AsyncPool:
    """psycopg's `AsyncConnectionPool` with an outage fast path."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.down = False
        self.pool: AsyncConnectionPool[AsyncConn] = AsyncConnectionPool(
            target.conninfo,
            min_size=1,
            max_size=target.pool_size,
            kwargs=target.connect_kwargs(),
            timeout=target.pool_timeout,
            open=False,
            name=f"conveyor-{target.schema}",
        )
        self._guard: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Open the pool with its first connection (the server was just reached directly)."""
        try:
            await self.pool.open(wait=True, timeout=self.target.pool_timeout)
        except PoolTimeout:
            await self.pool.close(timeout=1.0)
            await self.probe()  # names the real cause when the server went away meanwhile
            raise BackendUnavailable(
                f"could not open a pooled connection to PostgreSQL at {self.target.where} "
                f"within {self.target.pool_timeout:g}s; raise pool_timeout in the URL"
            ) from None
        self._guard = asyncio.create_task(self._close_at_loop_end(), name="conveyor-pg-guard")

    async def _close_at_loop_end(self) -> None:
        # psycopg_pool's maintenance tasks swallow a cancellation that lands while they
        # connect and then wait forever, so asyncio.run() would hang at exit when a backend
        # was never closed (a worker's main backend, a script's enqueue_async). asyncio.run()
        # cancels every task at the end, this one included: close the pool then, which
        # stops those tasks properly.
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await self.pool.close(timeout=1.0)
            raise

    async def close(self) -> None:
        """Close every connection."""
        if self._guard is not None:
            self._guard.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._guard
        # Also when the guard was cancelled before it ever ran (a pool closed right away).
        await self.pool.close(timeout=5.0)

    async def probe(self) -> None:
        """One direct connection: raises `BackendUnavailable` at once while the server is down."""
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.target.conninfo, **self.target.connect_kwargs()
            )
        except (psycopg.Error, OSError) as exc:
            self.down = True
            raise translate(exc, self.target) from exc
        await conn.close()
        self.down = False

    async def _checkout(self) -> AsyncConn:
        for _ in range(self.target.pool_size + 1):
            if self.down:
                await self.probe()
            task = asyncio.current_task()
            requests = task.cancelling() if task is not None else 0
            try:
                conn = await self.pool.getconn()
            except PoolTimeout:
                await self.probe()  # names the real cause when the server is down
                raise _exhausted(self.target, self.target.pool_size) from None
            if task is not None and task.cancelling() > requests:
                # Python 3.11's asyncio.wait_for (inside psycopg_pool's wait for a free
                # connection) can swallow a cancellation that lands as the connection is
                # handed over; honour it, or a cancelled caller would run on.
                await self.pool.putconn(conn)
                raise asyncio.CancelledError
            if not looks_closed(conn):
                return conn
            self.down = True  # the server closed it: restarted, or gone
            await conn.close()
            await self.pool.putconn(conn)
        raise _exhausted(self.target, self.target.pool_size)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConn]:
        """A pooled connection; driver errors come out as Conveyor errors."""
        conn = await self._checkout()
        try:
            yield conn
        except (psycopg.Error, OSError) as exc:
            if is_connection_error(exc):
                self.down = True
            raise translate(exc, self.target) from exc
        finally:
            await self.pool.putconn(conn)
        self.down = False


class SyncPool:
    """psycopg's sync `ConnectionPool`, opened on first use, with the same fast path."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.down = False
        self.pool: ConnectionPool[SyncConn] = ConnectionPool(
            target.conninfo,
            min_size=1,
            max_size=SYNC_POOL_SIZE,
            kwargs=target.connect_kwargs(),
            timeout=target.pool_timeout,
            open=False,
            name=f"conveyor-{target.schema}-sync",
        )
        self.pool.open(wait=False)

    def close(self) -> None:
        """Close every connection and stop the pool's threads."""
        self.pool.close(timeout=5.0)

    def probe(self) -> None:
        """One direct connection: raises `BackendUnavailable` at once while the server is down."""
        try:
            conn = psycopg.Connection.connect(self.target.conninfo, **self.target.connect_kwargs())
        except (psycopg.Error, OSError) as exc:
            self.down = True
            raise translate(exc, self.target) from exc
        conn.close()
        self.down = False

    def _checkout(self) -> SyncConn:
        for _ in range(SYNC_POOL_SIZE + 1):
            if self.down:
                self.probe()
            try:
                conn = self.pool.getconn()
            except PoolTimeout:
                self.probe()
                raise _exhausted(self.target, SYNC_POOL_SIZE) from None
            if not looks_closed(conn):
                return conn
            self.down = True
            conn.close()
            self.pool.putconn(conn)
        raise _exhausted(self.target, SYNC_POOL_SIZE)

    @contextlib.contextmanager
    def connection(self) -> Iterator[SyncConn]:
        """A pooled connection; driver errors come out as Conveyor errors."""
        conn = self._checkout()
        try:
            yield conn
        except (psycopg.Error, OSError) as exc:
            if is_connection_error(exc):
                self.down = True
            raise translate(exc, self.target) from exc
        finally:
            self.pool.putconn(conn)
        self.down = False
