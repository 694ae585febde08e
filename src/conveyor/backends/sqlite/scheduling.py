"""The Scheduling capability on SQLite: the scheduler's leader leases and tick records.

Queries live in `schedules.sql`; tables come from schema step ``migrate_3``. Each call is one
``BEGIN IMMEDIATE`` transaction on the handle's thread, like every other write;
`SqliteScheduling` runs the functions here through the handle's `Runner`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from conveyor.backends.capabilities import Scheduling
from conveyor.backends.sqlite import rows, sql
from conveyor.backends.sqlite.runner import Runner
from conveyor.backends.sqlite.store import Store
from conveyor.job import EnqueueResult, NewJob

log = logging.getLogger("conveyor.backends.sqlite")


def _q(name: str) -> str:
    return sql.load("schedules.sql")[name]


def acquire_lease(store: Store, name: str, owner: str, ttl: float) -> bool:
    """Take, or renew, the lease ``name`` for ``owner``; whether ``owner`` now holds it."""

    def txn() -> bool:
        now = store.clock.now()
        params = {"name": name, "owner": owner, "expires": now + ttl, "now": now}
        if store.conn.execute(_q("repair_lease"), {"name": name}).rowcount:
            log.error("lease %r had an expiry that is not a number; dropped it as expired", name)
        return store.conn.execute(_q("acquire_lease"), params).rowcount > 0

    return store.write(txn)


def release_lease(store: Store, name: str, owner: str) -> None:
    """Drop the lease if ``owner`` holds it."""
    store.write(lambda: store.conn.execute(_q("release_lease"), {"name": name, "owner": owner}))


def schedule_state(store: Store, names: Sequence[str]) -> dict[str, float | None]:
    """The last tick of each named entry."""
    found: dict[str, float] = {}
    for row in store.read(lambda: store.conn.execute(_q("schedule_state")).fetchall()):
        try:
            found[rows.text(row["name"])] = rows.real(row["last_tick"])
        except (TypeError, ValueError) as exc:
            # Read as never ticked; the next tick recorded replaces it (record_tick).
            log.error("schedule entry %r has a damaged last tick: %s", rows.shown(row["name"]), exc)
    return {name: found.get(name) for name in names}


def enqueue_tick(
    store: Store, name: str, tick: float, jobs: Sequence[NewJob]
) -> list[EnqueueResult] | None:
    """Record ``tick`` and enqueue its jobs in one transaction, unless it is not new."""

    def txn() -> list[EnqueueResult] | None:
        params = {"name": name, "tick": tick}
        if store.conn.execute(_q("record_tick"), params).rowcount == 0:
            return None
        return store.enqueue(jobs)  # joins this transaction

    return store.write(txn)


class SqliteScheduling(Scheduling):
    """The Scheduling capability of one `SqliteBackend` handle, on that handle's `Runner`.

    `enqueue_tick` adds jobs, so it goes through `Runner.run_write` and wakes this handle's
    waiting claims.
    """

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew a named lease (see `Scheduling.acquire_lease`)."""
        return await self._runner.run(lambda s: acquire_lease(s, name, owner, ttl))

    async def release_lease(self, name: str, owner: str) -> None:
        """Give up a named lease held by ``owner``."""
        await self._runner.run(lambda s: release_lease(s, name, owner))

    async def schedule_state(self, names: Sequence[str]) -> dict[str, float | None]:
        """The last tick recorded per entry."""
        return await self._runner.run(lambda s: schedule_state(s, names))

    async def enqueue_tick(
        self, name: str, tick: float, jobs: Sequence[NewJob]
    ) -> list[EnqueueResult] | None:
        """Enqueue a tick's jobs and record the tick, atomically; ``None`` if not new."""
        return await self._runner.run_write(lambda s: enqueue_tick(s, name, tick, jobs))


__all__ = ["SqliteScheduling", "acquire_lease", "enqueue_tick", "release_lease"]
