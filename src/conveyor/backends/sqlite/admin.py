"""Reading and repairing jobs on SQLite: the Admin capability (CLI and dashboard).

Listing, counting, retrying dead jobs, cancelling, deleting and purging, and pausing
queues. Queries live in `admin.sql`; the paused-queue table comes from schema step
``migrate_4``. Each function is one transaction on a `Store` (writes are ``BEGIN
IMMEDIATE``); `SqliteAdmin` runs them on the handle's thread through its `Runner`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from conveyor.backends.base import COUNTERS
from conveyor.backends.capabilities import Admin
from conveyor.backends.sqlite import rows, sql
from conveyor.backends.sqlite.runner import Runner
from conveyor.backends.sqlite.store import Store
from conveyor.job import FINAL_STATES, JobQuery, JobRecord, QueueStats, State

log = logging.getLogger("conveyor.backends.sqlite")


def _q(name: str) -> str:
    return sql.load("admin.sql")[name]


def _exec(store: Store, name: str, params: dict[str, Any] | None = None) -> sqlite3.Cursor:
    return store.conn.execute(_q(name), params or {})


def _queue_name(value: Any, where: str) -> str:
    # A damaged name is listed in a readable form (and said so), never a failed read.
    name = rows.name_of(value)
    if name != value:
        log.error("%s: a queue name is not valid text: %r", where, rows.original(value))
    return name


# -- reading -----------------------------------------------------------------------------
def matching(store: Store, q: JobQuery) -> list[JobRecord]:
    """Jobs matching the filters, newest first."""
    clause, params = sql.filter_clause(q)
    params.update(limit=q.limit, offset=q.offset)
    statement = sql.splice(_q("query"), filters=clause)
    found = store.read(lambda: store.conn.execute(statement, params).fetchall())
    return [rows.job_or_placeholder(r) for r in found]


def stats(store: Store) -> list[QueueStats]:
    """Counts per (queue, priority) by state; due scheduled jobs count as ready."""
    found = store.read(lambda: _exec(store, "stats", {"now": store.clock.now()}).fetchall())
    table: dict[tuple[str, int], QueueStats] = {}
    for r in found:
        # A damaged queue name is counted under a readable form of its bytes; a
        # priority or state outside the schema's checks is left out, and said so.
        queue = rows.name_of(r["queue"])
        try:
            priority, state = rows.priority(r["priority"]), rows.state(r["st"])
        except (TypeError, ValueError) as exc:
            log.error("stats: %d job(s) of queue %r left out: %s", r["n"], queue, exc)
            continue
        key = (queue, int(priority))
        row = table.setdefault(key, QueueStats(queue, priority))
        row.counts[state] = row.counts.get(state, 0) + r["n"]
    return [table[k] for k in sorted(table)]


def counters(store: Store) -> dict[str, int]:
    """Every counter in `COUNTERS`."""
    found: dict[str, int] = {}
    for r in store.read(lambda: _exec(store, "counters").fetchall()):
        try:
            found[rows.text(r["name"])] = rows.integer(r["value"])
        except (TypeError, ValueError) as exc:
            # The next bump repairs it: SQL adds to a damaged value as to 0.
            log.error("counter %r is damaged and read as 0: %s", rows.shown(r["name"]), exc)
    return {name: found.get(name, 0) for name in COUNTERS}


def oldest_ready(store: Store) -> dict[str, float]:
    """Per queue with ready (or due) jobs, the oldest one's ``run_at``."""
    now = store.clock.now()
    out: dict[str, float] = {}
    for row in store.read(lambda: _exec(store, "oldest_ready", {"now": now}).fetchall()):
        queue = _queue_name(row["queue"], "oldest ready")
        oldest = rows.number_or_none(row["oldest"])
        if oldest is None:  # only damaged run_at values: the next claim quarantines them
            log.error("oldest ready: queue %r has only jobs with a damaged run_at", queue)
            continue
        out[queue] = oldest
    return out


# -- repairing ---------------------------------------------------------------------------
def retry_dead(store: Store, job_ids: Sequence[str] | None) -> int:
    """Dead jobs back to ready with fresh attempts, oldest first; skips held unique keys."""
    ids = None if job_ids is None else json.dumps(list(job_ids))

    def txn() -> int:
        now = store.clock.now()
        count = 0
        for row in _exec(store, "dead_jobs", {"ids": ids}).fetchall():
            key = row["unique_key"]
            # A damaged key cannot be looked up (nor bound); the claim quarantines the
            # job again anyway, until its record is repaired.
            if rows.is_text(key) and store.holder_of(key) is not None:
                continue  # a newer job holds the key; retrying would run it twice
            _exec(store, "retry_dead", {"seq": row["seq"], "now": now})
            count += 1
        return count

    return store.write(txn)


def cancel(store: Store, job_id: str) -> bool:
    """Cancel an active job."""
    return store.write(
        lambda: _exec(store, "cancel", {"id": job_id, "now": store.clock.now()}).rowcount > 0
    )


def delete(store: Store, job_ids: Sequence[str]) -> int:
    """Delete the final-state jobs among ``job_ids``; how many went."""
    if not job_ids:
        return 0
    ids = json.dumps(list(job_ids))
    return int(store.write(lambda: _exec(store, "delete_final", {"ids": ids}).rowcount))


def purge(store: Store, states: Sequence[State], older_than: float | None) -> int:
    """Delete jobs in the final states among ``states`` (older than, if given)."""
    final = tuple(dict.fromkeys(State(s) for s in states if State(s) in FINAL_STATES))
    if not final:
        return 0
    params: dict[str, Any] = {}
    statement = sql.splice(_q("purge"), states=sql.states_list(final, params))

    def txn() -> int:
        params["before"] = None if older_than is None else store.clock.now() - older_than
        return store.conn.execute(statement, params).rowcount

    return store.write(txn)


# -- pausing -----------------------------------------------------------------------------
def pause_queue(store: Store, queue: str) -> None:
    """Add ``queue`` to the paused queues."""
    store.write(lambda: _exec(store, "pause_queue", {"queue": queue}))


def resume_queue(store: Store, queue: str) -> None:
    """Remove ``queue`` from the paused queues."""
    store.write(lambda: _exec(store, "resume_queue", {"queue": queue}))


def paused_queues(store: Store) -> list[str]:
    """Paused queue names, sorted."""
    found = store.read(lambda: _exec(store, "paused_queues").fetchall())
    return [_queue_name(row["queue"], "paused queues") for row in found]


class SqliteAdmin(Admin):
    """The Admin capability of one `SqliteBackend` handle, on that handle's `Runner`.

    Writes that make work claimable (`retry_dead`, `resume_queue`) go through
    `Runner.run_write`, so this handle's waiting claims look again at once; other
    connections see the commit through ``PRAGMA data_version``.
    """

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def query(self, query: JobQuery) -> list[JobRecord]:
        """Jobs matching ``query``, newest first."""
        return await self._runner.run(lambda s: matching(s, query))

    async def stats(self) -> list[QueueStats]:
        """Job counts per queue and priority, by state."""
        return await self._runner.run(stats)

    async def counters(self) -> dict[str, int]:
        """The fenced / recovered / poisoned totals."""
        return await self._runner.run(counters)

    async def oldest_ready(self) -> dict[str, float]:
        """Per queue, the ``run_at`` of its oldest ready job."""
        return await self._runner.run(oldest_ready)

    async def retry_dead(self, job_ids: Sequence[str] | None = None) -> int:
        """Dead jobs back to ready with fresh attempts."""
        return await self._runner.run_write(lambda s: retry_dead(s, job_ids))

    async def cancel(self, job_id: str) -> bool:
        """Cancel an active job; ``False`` if it was already final (or unknown)."""
        return await self._runner.run(lambda s: cancel(s, job_id))

    async def delete(self, job_ids: Sequence[str]) -> int:
        """Delete the given final-state jobs; how many were deleted."""
        return await self._runner.run(lambda s: delete(s, job_ids))

    async def purge(self, states: Sequence[State], older_than: float | None = None) -> int:
        """Delete final-state jobs in ``states`` (finished over ``older_than`` s ago, if given)."""
        return await self._runner.run(lambda s: purge(s, states, older_than))

    async def pause_queue(self, queue: str) -> None:
        """Stop claims from taking ``queue``'s jobs."""
        await self._runner.run(lambda s: pause_queue(s, queue))

    async def resume_queue(self, queue: str) -> None:
        """Let claims take ``queue``'s jobs again, waking this handle's waiting claims."""
        await self._runner.run_write(lambda s: resume_queue(s, queue))

    async def paused_queues(self) -> list[str]:
        """Paused queue names, sorted."""
        return await self._runner.run(paused_queues)
