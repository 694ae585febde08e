"""`Runner`: how one `SqliteBackend` handle runs `Store` calls; its parts share it.

The backend's core verbs and its capabilities (`SqliteAdmin`, `SqliteTelemetry`,
`SqliteScheduling`, `SqliteLimits`, `SqliteProgress`) all go through one `Runner`, the
handle's connection object. It owns:

* one thread and the connection it opened, where async calls run (`run`), so a slow disk
  never stalls the event loop;
* the group commit: hot writes that queue up while that thread is busy share one
  transaction (`grouped`, see `group_commit.py`);
* a second connection behind a lock for code without an event loop (`sync`);
* the wait for work (`sleep_until_work`), which watches ``PRAGMA data_version`` for commits
  by other connections and a counter of this handle's own writes, which that pragma does not
  report to the connection that made them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from conveyor.backends.sqlite import sql
from conveyor.backends.sqlite.connection import Target, connect
from conveyor.backends.sqlite.group_commit import GroupCommit
from conveyor.backends.sqlite.store import Store
from conveyor.clock import Clock
from conveyor.errors import BackendError
from conveyor.job import Routing

T = TypeVar("T")

#: How often a waiting claim asks SQLite whether another process committed something.
POLL_INTERVAL = 0.02


class Runner:
    """Runs `Store` calls for one handle on ``target``; ``owner`` names it in errors."""

    def __init__(self, owner: str, target: Target, clock: Clock) -> None:
        self.owner = owner
        self.target = target
        self.clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conveyor-sqlite")
        self._store: Store | None = None  # touched only on the executor's thread
        self._commits = GroupCommit(self._executor, self._open_store)
        self._sync_store: Store | None = None
        self._sync_lock = threading.Lock()
        self._closed = False
        # Bumped after this handle's own writes that may make work claimable.
        self._writes = 0

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f"{self.owner} is closed; create a new backend (or clone())")

    def _open_store(self) -> Store:
        if self._store is None:
            self._store = Store(connect(self.target), self.clock, self.target.path)
        return self._store

    # -- running -------------------------------------------------------------------------
    async def run(self, fn: Callable[[Store], T]) -> T:
        """``fn`` on the handle's thread (opening the file on first use)."""
        self._check_open()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._open_store()))

    async def run_write(self, fn: Callable[[Store], T]) -> T:
        """`run` for a write that may make work claimable: this handle's waiters look again."""
        try:
            return await self.run(fn)
        finally:
            self._writes += 1

    async def grouped(self, fn: Callable[[Store], T]) -> T:
        """``fn`` as a write that may share its transaction with others (group commit).

        It commits even if the caller stops waiting.
        """
        self._check_open()
        result: T = await self._commits.submit(fn)
        return result

    async def grouped_write(self, fn: Callable[[Store], T]) -> T:
        """`grouped` for a write that may make work claimable (see `run_write`)."""
        try:
            return await self.grouped(fn)
        finally:
            self._writes += 1

    def sync(self, fn: Callable[[Store], T]) -> T:
        """``fn`` on the second connection, from any thread, under its lock."""
        with self._sync_lock:
            self._check_open()
            if self._sync_store is None:
                conn = connect(self.target, check_same_thread=False)
                self._sync_store = Store(conn, self.clock, self.target.path)
            return fn(self._sync_store)

    def sync_write(self, fn: Callable[[Store], T]) -> T:
        """`sync` for a write that may make work claimable (see `run_write`)."""
        try:
            return self.sync(fn)
        finally:
            self._writes += 1

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

    # -- waiting -------------------------------------------------------------------------
    async def sleep_until_work(self, routing: Routing, timeout: float) -> None:
        """Sleep until work matching ``routing`` may be claimable, or ``timeout`` seconds pass.

        Other processes cannot signal this one, so it polls ``PRAGMA data_version`` (a
        cheap read that changes when any other connection commits) every `POLL_INTERVAL`
        and only then asks whether matching work is ready or a scheduled job is due. Jobs of
        paused queues count for neither; resuming a queue is a write, so it wakes waiters.
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
                version = await self.run(lambda s: s.data_version())
                ready, next_due = await self.run(lambda s: s.probe(probe, params))
                if ready:
                    return
                if next_due is not None:
                    deadline = min(deadline, loop.time() + next_due - self.clock.now())
            left = deadline - loop.time()
            if left <= 0:
                return
            await asyncio.sleep(min(POLL_INTERVAL, left))
            if await self.run(lambda s: s.data_version()) != version:
                writes = -1  # something changed: probe again
