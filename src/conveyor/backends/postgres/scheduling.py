"""The scheduler's leader lease and cron ticks on PostgreSQL (queries in `schedules.sql`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import psycopg

from conveyor.backends.capabilities import Scheduling
from conveyor.backends.postgres import sql
from conveyor.backends.postgres.connection import translate
from conveyor.backends.postgres.database import Database
from conveyor.backends.postgres.rows import enqueue_async
from conveyor.job import EnqueueResult, NewJob


class PostgresScheduling(Scheduling):
    """`Scheduling` as a leases table and a tick per entry, recorded with its jobs."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._sq = sql.queries(db.target.schema, "schedules.sql")

    async def _fetch(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        async with self.db.conn() as conn:
            try:
                cur = await conn.execute(self._sq[name], params)
                return await cur.fetchall() if cur.description else []
            except psycopg.Error as exc:
                raise translate(exc, self.db.target) from exc

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew a named lease on the store's clock (see `Scheduling.acquire_lease`)."""
        rows = await self._fetch(
            "acquire_lease", {"now": self.db.now(), "name": name, "owner": owner, "ttl": ttl}
        )
        return bool(rows)

    async def release_lease(self, name: str, owner: str) -> None:
        """Give up a named lease held by ``owner``."""
        await self._fetch("release_lease", {"name": name, "owner": owner})

    async def schedule_state(self, names: Sequence[str]) -> dict[str, float | None]:
        """The last tick recorded per entry."""
        rows = await self._fetch("schedule_state", {"names": list(names)})
        # A NaN or infinite tick (a damaged row) is no tick: the entry fires as if new,
        # and record_tick replaces the value.
        found = {str(r[0]): float(r[1]) for r in rows if math.isfinite(r[1])}
        return {n: found.get(n) for n in names}

    async def enqueue_tick(
        self, name: str, tick: float, jobs: Sequence[NewJob]
    ) -> list[EnqueueResult] | None:
        """Record the tick and enqueue its jobs in one transaction; ``None`` if not new."""
        async with self.db.conn() as conn:
            try:
                async with conn.transaction():
                    cur = await conn.execute(self._sq["record_tick"], {"name": name, "tick": tick})
                    if await cur.fetchone() is None:
                        return None
                    return await enqueue_async(conn, self.db.q, self.db.plan(jobs))
            except psycopg.Error as exc:
                raise translate(exc, self.db.target) from exc
