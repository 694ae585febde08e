"""The calls off a worker's hot path: reads, repairs, retention, the worker registry, health.

A mixin of `PostgresBackend`, kept apart so each file stays small; it relies only on the
backend's connection helpers declared below.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from psycopg.rows import dict_row

from conveyor.backends.base import COUNTERS
from conveyor.backends.postgres import sql
from conveyor.backends.postgres.part import PostgresPart
from conveyor.backends.postgres.records import record_or_placeholder, to_worker
from conveyor.backends.postgres.rows import Row, to_json
from conveyor.backends.unreadable import UnreadableRecord
from conveyor.job import (
    FINAL_STATES,
    JobQuery,
    JobRecord,
    Priority,
    QueueStats,
    State,
    WorkerInfo,
)

log = logging.getLogger("conveyor.postgres")

#: Rows deleted per purge statement: short transactions that never hold back vacuum.
PURGE_BATCH = 5_000
#: Dead rows in the jobs table worth a warning, when they also outnumber the live ones.
DEAD_ROWS_WARNING = 100_000


class Admin(PostgresPart):
    """Reading, repairing, pruning, the worker registry and diagnostics."""

    q: sql.Queries

    async def _rowcount(self, text: str, params: dict[str, Any]) -> int:
        async with self._conn() as conn, conn.cursor() as cur:
            await cur.execute(text, params)
            return max(cur.rowcount, 0)

    # -- reading -------------------------------------------------------------------------
    async def get(self, job_id: str) -> JobRecord | None:
        """One job by id, or ``None``."""
        rows = await self._rows("get", {"id": job_id})
        return record_or_placeholder(rows[0]) if rows else None

    async def query(self, query: JobQuery) -> list[JobRecord]:
        """Jobs matching ``query``, newest first."""
        clause, params = sql.filter_clause(query)
        params.update(limit=query.limit, offset=query.offset)
        text = sql.splice(self.q["query"], filters=clause)
        return [record_or_placeholder(r) for r in await self._rows("query", params, text)]

    async def stats(self) -> list[QueueStats]:
        """Counts per (queue, priority) by state; due scheduled jobs count as ready."""
        table: dict[tuple[str, int], QueueStats] = {}
        for r in await self._rows("stats", {"now": self._now()}):
            key = (r["queue"], r["priority"])
            row = table.setdefault(key, QueueStats(r["queue"], Priority(r["priority"])))
            state = State(r["st"])
            row.counts[state] = row.counts.get(state, 0) + int(r["n"])
        return [table[k] for k in sorted(table)]

    async def counters(self) -> dict[str, int]:
        """Every counter in `COUNTERS`."""
        found = {r["name"]: int(r["value"]) for r in await self._rows("counters", {})}
        return {name: found.get(name, 0) for name in COUNTERS}

    # -- repairing -----------------------------------------------------------------------
    async def retry_dead(self, job_ids: Sequence[str] | None = None) -> int:
        """Dead jobs back to ready with fresh attempts; skips unique keys held elsewhere."""
        rows = await self._rows(
            "retry_dead",
            {
                "now": self._now(),
                "channel": self._channel,
                "ids": None if job_ids is None else list(job_ids),
            },
        )
        return int(rows[0]["retried"])

    async def cancel(self, job_id: str) -> bool:
        """Cancel an active job; ``False`` if it was already final (or unknown)."""
        return await self._rowcount(self.q["cancel"], {"id": job_id, "now": self._now()}) > 0

    async def purge(self, states: Sequence[State], older_than: float | None = None) -> int:
        """Delete final-state jobs in ``states``, in batches of `PURGE_BATCH`."""
        final = sorted({State(s).value for s in states if State(s) in FINAL_STATES})
        if not final:
            return 0
        name = "purge_all" if older_than is None else "purge_before"
        params = {
            "states": final,
            "now": self._now(),
            "older_than": older_than,
            "batch": PURGE_BATCH,
        }
        total = 0
        while True:
            deleted = await self._rowcount(self.q[name], params)
            total += deleted
            if deleted < PURGE_BATCH:
                return total

    # -- worker registry -------------------------------------------------------------------
    async def register_worker(self, info: WorkerInfo, ttl: float) -> None:
        """Record or refresh a live worker (and drop expired ones)."""
        await self._rows(
            "register_worker",
            {
                "now": self._now(),
                "ttl": ttl,
                "id": info.id,
                "host": info.host,
                "pid": info.pid,
                "pool": info.pool,
                "queues": None if info.queues is None else list(info.queues),
                "started_at": info.started_at,
                "stats": to_json(info.stats, f"the stats of worker {info.id}"),
            },
        )

    async def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker."""
        await self._rows("unregister_worker", {"id": worker_id})

    async def workers(self) -> list[WorkerInfo]:
        """Live workers, in registration order; a registry row that cannot be read is skipped.

        Such a row is logged and left alone: it expires like any other, and the next worker
        to register deletes it (`register_worker`).
        """
        found: list[WorkerInfo] = []
        for row in await self._rows("workers", {"now": self._now()}):
            try:
                found.append(to_worker(row))
            except UnreadableRecord as exc:
                log.error(
                    "skipping worker registry row %r: the stored field %r cannot be read (%s)",
                    exc.job_id,
                    exc.field,
                    exc.detail,
                )
        return found

    # -- health ----------------------------------------------------------------------------
    async def diagnostics(self) -> list[str]:
        """Long transactions that hold back vacuum, and a jobs table vacuum cannot keep up with."""
        seconds = self.target.long_transaction
        lines: list[str] = []
        async with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(self.q["long_transactions"], {"seconds": seconds})
            lines += [_long_transaction(r) for r in await cur.fetchall()]
            await cur.execute(self.q["old_prepared_transactions"], {"seconds": seconds})
            lines += [_prepared(r) for r in await cur.fetchall()]
            await cur.execute(self.q["dead_tuples"], {"schema": self.target.schema})
            stats = await cur.fetchone()
        if stats is not None:
            dead, live = int(stats["n_dead_tup"] or 0), int(stats["n_live_tup"] or 0)
            if dead >= DEAD_ROWS_WARNING and dead > live:
                lines.append(
                    f"PostgreSQL: the jobs table holds {dead:,} dead rows for {live:,} live "
                    "ones: vacuum is behind (a long transaction, or autovacuum too slow); "
                    "claims slow down until it catches up. See docs/postgres.md"
                )
        return lines


def _long_transaction(r: Row) -> str:
    xmin = ", holding back the xmin horizon" if r["holds_xmin"] else ""
    return (
        f"PostgreSQL: a transaction has been open for {r['seconds']:.0f}s in pid {r['pid']} "
        f"({r['usename']}@{r['datname']}, {r['state']}{xmin}): {r['query']!r}. While it "
        "stays open VACUUM cannot remove dead job rows and claims slow down; commit or end "
        f"it (SELECT pg_terminate_backend({r['pid']}))"
    )


def _prepared(r: Row) -> str:
    return (
        f"PostgreSQL: prepared transaction {r['gid']!r} in database {r['database']} has "
        f"waited {r['seconds']:.0f}s for COMMIT/ROLLBACK PREPARED; it holds back VACUUM"
    )
