"""The scheduler's part of the Backend protocol on PostgreSQL (queries in `schedules.sql`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from conveyor.backends.postgres import sql
from conveyor.backends.postgres.connection import translate
from conveyor.backends.postgres.part import PostgresPart
from conveyor.job import EnqueueResult, NewJob

if TYPE_CHECKING:
    from conveyor.backends.postgres.rows import EnqueuePlan


class PostgresScheduling(PostgresPart):
    """Mixed into `PostgresBackend`: leader leases and atomic tick records."""

    def _plan(self, jobs: Sequence[NewJob]) -> EnqueuePlan:
        raise NotImplementedError  # provided by PostgresBackend

    def _sq(self) -> sql.Queries:
        return sql.queries(self.target.schema, "schedules.sql")

    async def _fetch(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        async with self._conn() as conn:
            try:
                cur = await conn.execute(self._sq()[name], params)
                return await cur.fetchall() if cur.description else []
            except psycopg.Error as exc:
                raise translate(exc, self.target) from exc

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew a named lease on the backend's clock (see `Backend.acquire_lease`)."""
        rows = await self._fetch(
            "acquire_lease", {"now": self._now(), "name": name, "owner": owner, "ttl": ttl}
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
        from conveyor.backends.postgres.backend import _enqueue_async

        q = sql.queries(self.target.schema)
        async with self._conn() as conn:
            try:
                async with conn.transaction():
                    cur = await conn.execute(
                        self._sq()["record_tick"], {"name": name, "tick": tick}
                    )
                    if await cur.fetchone() is None:
                        return None
                    return await _enqueue_async(conn, q, self._plan(jobs))
            except psycopg.Error as exc:
                raise translate(exc, self.target) from exc
