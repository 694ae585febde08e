"""Rate windows and concurrency slots on SQLite: the backend side of rate and concurrency limits.

Queries live in `limits.sql`; tables come from schema step ``migrate_4``. Each call is one
``BEGIN IMMEDIATE`` transaction (or part of a group commit), so two processes counting the
same window or the same slots never both take the last one. Times come from the store's
clock, as everywhere else in the backend. `SqliteLimits` is the Limits capability: it runs
the functions here through the handle's `Runner`.
"""

from __future__ import annotations

import logging
from typing import Any

from conveyor.backends.capabilities import Limits
from conveyor.backends.sqlite import sql
from conveyor.backends.sqlite.runner import Runner
from conveyor.backends.sqlite.store import Store

log = logging.getLogger("conveyor.backends.sqlite")

#: The shortest wait `rate_acquire` reports when refusing, so a refusal is always > 0.
MIN_WAIT = 1e-6


def _exec(store: Store, name: str, params: dict[str, Any]) -> Any:
    return store.conn.execute(sql.load("limits.sql")[name], params)


def rate_acquire(store: Store, key: str, limit: int, period: float) -> float:
    """Record a start in window ``key`` and return 0.0, or the seconds until there is room."""

    def txn() -> float:
        now = store.clock.now()
        _exec(store, "rate_prune", {"key": key, "cutoff": now - period})
        if repaired := _exec(store, "rate_repair", {"key": key}).rowcount:
            log.error(
                "rate window %r: dropped %d start(s) whose time is not a number", key, repaired
            )
        row = _exec(store, "rate_nth_newest", {"key": key, "skip": max(0, limit - 1)}).fetchone()
        if row is not None:  # ``limit`` starts are still in the window
            return max(float(row["started_at"]) + period - now, MIN_WAIT)
        _exec(store, "rate_record", {"key": key, "now": now})
        return 0.0

    return store.write(txn)


def slot_acquire(store: Store, key: str, holder: str, limit: int, ttl: float) -> bool:
    """Take or renew ``holder``'s slot of ``key``; False when ``limit`` others hold one."""

    def txn() -> bool:
        now = store.clock.now()
        params = {"key": key, "holder": holder, "now": now, "expires": now + ttl}
        _exec(store, "slot_prune", params)
        if repaired := _exec(store, "slot_repair", params).rowcount:
            log.error("slots %r: freed %d slot(s) whose expiry is not a number", key, repaired)
        if _exec(store, "slot_renew", params).rowcount > 0:
            return True
        if _exec(store, "slot_count", params).fetchone()[0] >= limit:
            return False
        _exec(store, "slot_take", params)
        return True

    return store.write(txn)


def slot_release(store: Store, key: str, holder: str) -> None:
    """Free ``holder``'s slot of ``key``, if it holds one."""
    store.write(lambda: _exec(store, "slot_release", {"key": key, "holder": holder}))


class SqliteLimits(Limits):
    """The Limits capability of one `SqliteBackend` handle, on that handle's `Runner`.

    Rate and slot calls come once per job start, so they go through the group commit and
    share a transaction with the claims and acks queued beside them.
    """

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def rate_acquire(self, key: str, limit: int, period: float) -> float:
        """Take one start from a sliding window (see `Limits.rate_acquire`)."""
        return await self._runner.grouped(lambda s: rate_acquire(s, key, limit, period))

    async def slot_acquire(self, key: str, holder: str, limit: int, ttl: float) -> bool:
        """Hold one of ``limit`` slots of ``key`` for ``ttl`` seconds."""
        return await self._runner.grouped(lambda s: slot_acquire(s, key, holder, limit, ttl))

    async def slot_release(self, key: str, holder: str) -> None:
        """Free ``holder``'s slot of ``key``."""
        await self._runner.grouped(lambda s: slot_release(s, key, holder))


__all__ = ["SqliteLimits", "rate_acquire", "slot_acquire", "slot_release"]
