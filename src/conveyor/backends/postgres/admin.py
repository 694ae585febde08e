"""Reading and repairing the store on PostgreSQL: what the CLI and the dashboard show and do.

`PostgresAdmin` lists, counts, repairs, deletes, prunes and pauses (queries in
`queries.sql` and `operations.sql`; the claim's side of pausing is in `queries.sql`), and
reports what keeps vacuum from cleaning the jobs table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.rows import dict_row

from conveyor.backends.base import COUNTERS
from conveyor.backends.capabilities import Admin
from conveyor.backends.postgres import sql
from conveyor.backends.postgres.database import Database
from conveyor.backends.postgres.records import record_or_placeholder
from conveyor.backends.postgres.rows import Row
from conveyor.job import FINAL_STATES, JobQuery, JobRecord, Priority, QueueStats, State

#: Rows deleted per purge statement: short transactions that never hold back vacuum.
PURGE_BATCH = 5_000
#: Dead rows in the jobs table worth a warning, when they also outnumber the live ones.
DEAD_ROWS_WARNING = 100_000


class PostgresAdmin(Admin):
    """`Admin` on PostgreSQL: reads, repairs, pruning, pausing and health."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _op_rows(self, name: str, params: dict[str, Any]) -> list[Row]:
        return await self.db.file_rows("operations.sql", name, params)

    async def _rowcount(self, text: str, params: dict[str, Any]) -> int:
        async with self.db.conn() as conn, conn.cursor() as cur:
            await cur.execute(text, params)
            return max(cur.rowcount, 0)

    # -- reading -------------------------------------------------------------------------
    async def query(self, query: JobQuery) -> list[JobRecord]:
        """Jobs matching ``query``, newest first."""
        clause, params = sql.filter_clause(query)
        params.update(limit=query.limit, offset=query.offset)
        text = sql.splice(self.db.q["query"], filters=clause)
        return [record_or_placeholder(r) for r in await self.db.rows("query", params, text)]

    async def stats(self) -> list[QueueStats]:
        """Counts per (queue, priority) by state; due scheduled jobs count as ready."""
        table: dict[tuple[str, int], QueueStats] = {}
        for r in await self.db.rows("stats", {"now": self.db.now()}):
            key = (r["queue"], r["priority"])
            row = table.setdefault(key, QueueStats(r["queue"], Priority(r["priority"])))
            state = State(r["st"])
            row.counts[state] = row.counts.get(state, 0) + int(r["n"])
        return [table[k] for k in sorted(table)]

    async def counters(self) -> dict[str, int]:
        """Every counter in `COUNTERS`."""
        found = {r["name"]: int(r["value"]) for r in await self.db.rows("counters", {})}
        return {name: found.get(name, 0) for name in COUNTERS}

    async def oldest_ready(self) -> dict[str, float]:
        """Per queue with ready (or due) jobs, the oldest one's ``run_at``."""
        rows = await self._op_rows("oldest_ready", {"now": self.db.now()})
        return {r["queue"]: float(r["oldest"]) for r in rows}

    # -- repairing -----------------------------------------------------------------------
    async def retry_dead(self, job_ids: Sequence[str] | None = None) -> int:
        """Dead jobs back to ready with fresh attempts; skips unique keys held elsewhere."""
        rows = await self.db.rows(
            "retry_dead",
            {
                "now": self.db.now(),
                "channel": self.db.channel,
                "ids": None if job_ids is None else list(job_ids),
            },
        )
        return int(rows[0]["retried"])

    async def cancel(self, job_id: str) -> bool:
        """Cancel an active job; ``False`` if it was already final (or unknown)."""
        params = {"id": job_id, "now": self.db.now()}
        return await self._rowcount(self.db.q["cancel"], params) > 0

    async def delete(self, job_ids: Sequence[str]) -> int:
        """Delete the given jobs that are final; how many went."""
        if not job_ids:
            return 0
        rows = await self._op_rows("delete_jobs", {"ids": list(dict.fromkeys(job_ids))})
        return int(rows[0]["deleted"])

    async def purge(self, states: Sequence[State], older_than: float | None = None) -> int:
        """Delete final-state jobs in ``states``, in batches of `PURGE_BATCH`."""
        final = sorted({State(s).value for s in states if State(s) in FINAL_STATES})
        if not final:
            return 0
        name = "purge_all" if older_than is None else "purge_before"
        params = {
            "states": final,
            "now": self.db.now(),
            "older_than": older_than,
            "batch": PURGE_BATCH,
        }
        total = 0
        while True:
            deleted = await self._rowcount(self.db.q[name], params)
            total += deleted
            if deleted < PURGE_BATCH:
                return total

    # -- pausing ---------------------------------------------------------------------------
    async def pause_queue(self, queue: str) -> None:
        """Stop ``claim`` from taking ``queue``'s jobs (idempotent)."""
        await self._op_rows("pause_queue", {"now": self.db.now(), "queue": queue})

    async def resume_queue(self, queue: str) -> None:
        """Let ``claim`` take ``queue``'s jobs again; NOTIFY wakes idle workers."""
        await self._op_rows("resume_queue", {"queue": queue, "channel": self.db.channel})

    async def paused_queues(self) -> list[str]:
        """The paused queues, sorted."""
        return [r["queue"] for r in await self._op_rows("paused_queues", {})]

    # -- health ----------------------------------------------------------------------------
    async def diagnostics(self) -> list[str]:
        """Long transactions that hold back vacuum, and a jobs table vacuum cannot keep up with."""
        target, q = self.db.target, self.db.q
        lines: list[str] = []
        async with self.db.conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(q["long_transactions"], {"seconds": target.long_transaction})
            lines += [_long_transaction(r) for r in await cur.fetchall()]
            await cur.execute(q["old_prepared_transactions"], {"seconds": target.long_transaction})
            lines += [_prepared(r) for r in await cur.fetchall()]
            await cur.execute(q["dead_tuples"], {"schema": target.schema})
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
