"""LISTEN/NOTIFY wake-ups: one listening connection per backend handle, shared by its waiters.

Enqueue, release, retry and recovery send ``NOTIFY "conveyor:<schema>", 'queue,queue'`` in
the same transaction as their change, so the notification arrives only once the change is
committed and visible. An idle worker registers a waiter *before* it asks the database
whether work is ready, so a job committed between that question and the wait still wakes it:
no lost wake-ups.

LISTEN needs a session of its own: through PgBouncer in transaction mode notifications never
arrive. There, ``?listen=false`` makes idle workers poll, and if LISTEN fails here the
backend falls back to polling by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import psycopg
from psycopg import sql as pgsql

from conveyor.backends.postgres.connection import Target
from conveyor.job import Routing

log = logging.getLogger("conveyor.postgres")

#: After LISTEN failed, how long to poll before trying to listen again.
RETRY_LISTEN_AFTER = 5.0


@dataclass(eq=False, slots=True)
class Waiter:
    """One idle worker waiting for work its routing matches."""

    routing: Routing
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def wants(self, queues: list[str]) -> bool:
        """Whether a notification naming ``queues`` may concern this waiter."""
        if self.routing.queues is None or "*" in queues:
            return True
        return any(fnmatchcase(q, pattern) for q in queues for pattern in self.routing.queues)


class Listener:
    """A LISTEN connection and the task reading its notifications."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiters: set[Waiter] = set()
        self._lock = asyncio.Lock()
        self._failed_at: float | None = None
        self.notifications = 0

    @property
    def listening(self) -> bool:
        """Whether notifications are being received right now."""
        return self._reader is not None and not self._reader.done()

    async def start(self) -> bool:
        """Listen if not already; ``False`` when listening is off or unavailable (poll)."""
        if not self.target.listen:
            return False
        if self.listening:
            return True
        if self._failed_at is not None and time.monotonic() - self._failed_at < RETRY_LISTEN_AFTER:
            return False
        async with self._lock:
            if self.listening:
                return True
            conn = None
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.target.conninfo, **self.target.connect_kwargs()
                )
                await conn.execute(
                    pgsql.SQL("LISTEN {}").format(pgsql.Identifier(self.target.channel))
                )
            except BaseException as exc:
                # Cancelled (the waiter was woken otherwise) or failed after connecting:
                # close the connection, or it leaks until garbage collection.
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                if not isinstance(exc, (psycopg.Error, OSError)):
                    raise
                self._failed_at = time.monotonic()
                log.warning(
                    "cannot LISTEN on PostgreSQL at %s (%s): idle workers poll every %gs instead",
                    self.target.where,
                    " ".join(str(exc).split()),
                    self.target.poll_interval,
                )
                return False
            self._failed_at = None
            self._conn = conn
            self._reader = asyncio.create_task(self._read(conn), name="conveyor-pg-listen")
            return True

    def add(self, routing: Routing) -> Waiter:
        """Register a waiter; its event fires on a notification that may concern it."""
        waiter = Waiter(routing)
        self._waiters.add(waiter)
        return waiter

    def remove(self, waiter: Waiter) -> None:
        """Forget a waiter."""
        self._waiters.discard(waiter)

    async def _read(self, conn: psycopg.AsyncConnection[Any]) -> None:
        try:
            async for note in conn.notifies():
                self.notifications += 1
                queues = note.payload.split(",") if note.payload else ["*"]
                for waiter in list(self._waiters):
                    if waiter.wants(queues):
                        waiter.event.set()
        except (psycopg.Error, OSError) as exc:
            log.warning("lost the LISTEN connection to %s: %s", self.target.where, exc)
        finally:
            # Wake everyone: each re-checks the database (or finds it down and backs off).
            for waiter in list(self._waiters):
                waiter.event.set()
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()
            if self._conn is conn:
                self._conn = None

    async def close(self) -> None:
        """Stop listening and close the connection."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, psycopg.Error, OSError):
                await reader
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()
