"""Pause and resume, delete, oldest wait and throughput history on SQLite.

What the dashboard and alerts steer and read. Queries live in `operations.sql`; tables come
from schema step ``migrate_4``. Writes are ``BEGIN IMMEDIATE`` transactions on the backend's
own thread, like every other write.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, TypeVar

from conveyor.backends.sqlite import rows, sql
from conveyor.backends.sqlite.part import SqlitePart
from conveyor.backends.sqlite.store import Store
from conveyor.job import HistoryPoint

T = TypeVar("T")

log = logging.getLogger("conveyor.backends.sqlite")


def _exec(store: Store, name: str, params: dict[str, Any] | None = None) -> Any:
    return store.conn.execute(sql.load("operations.sql")[name], params or {})


def pause_queue(store: Store, queue: str) -> None:
    """Add ``queue`` to the paused queues."""
    store._write(lambda: _exec(store, "pause_queue", {"queue": queue}))


def resume_queue(store: Store, queue: str) -> None:
    """Remove ``queue`` from the paused queues."""
    store._write(lambda: _exec(store, "resume_queue", {"queue": queue}))


def paused_queues(store: Store) -> list[str]:
    """Paused queue names, sorted."""
    found = store._read(lambda: _exec(store, "paused_queues").fetchall())
    return [_queue_name(row["queue"], "paused queues") for row in found]


def _queue_name(value: Any, where: str) -> str:
    # A damaged name is listed in a readable form (and said so), never a failed read.
    name = rows.name_of(value)
    if name != value:
        log.error("%s: a queue name is not valid text: %r", where, rows.original(value))
    return name


def delete(store: Store, job_ids: Sequence[str]) -> int:
    """Delete the final-state jobs among ``job_ids``; how many went."""
    if not job_ids:
        return 0
    ids = json.dumps(list(job_ids))
    return int(store._write(lambda: _exec(store, "delete_final", {"ids": ids}).rowcount))


def oldest_ready(store: Store) -> dict[str, float]:
    """Per queue with ready (or due) jobs, the oldest one's ``run_at``."""
    now = store.clock.now()
    out: dict[str, float] = {}
    for row in store._read(lambda: _exec(store, "oldest_ready", {"now": now}).fetchall()):
        queue = _queue_name(row["queue"], "oldest ready")
        oldest = rows.number_or_none(row["oldest"])
        if oldest is None:  # only damaged run_at values: the next claim quarantines them
            log.error("oldest ready: queue %r has only jobs with a damaged run_at", queue)
            continue
        out[queue] = oldest
    return out


def record_history(store: Store, points: Sequence[HistoryPoint], keep: float) -> None:
    """Sum ``points`` into the stored minutes and drop minutes older than ``keep`` seconds."""
    rows = [
        {"minute": p.minute, "queue": p.queue, "succeeded": p.succeeded, "failed": p.failed}
        for p in points
    ]

    def txn() -> None:
        store.conn.executemany(sql.load("operations.sql")["record_history"], rows)
        _exec(store, "prune_history", {"cutoff": store.clock.now() - keep})
        if repaired := _exec(store, "repair_history", {}).rowcount:
            log.error("history: dropped %d row(s) whose minute is not a number", repaired)

    store._write(txn)


def history(store: Store, since: float) -> list[HistoryPoint]:
    """Stored minutes from ``since`` on, by minute then queue."""
    out: list[HistoryPoint] = []
    for r in store._read(lambda: _exec(store, "history", {"since": since}).fetchall()):
        try:
            out.append(
                HistoryPoint(
                    rows.integer(r["minute"]),
                    rows.text(r["queue"]),
                    rows.integer(r["succeeded"]),
                    rows.integer(r["failed"]),
                )
            )
        except (TypeError, ValueError) as exc:
            # Counts repair themselves on the next upsert (SQL adds to text as to 0);
            # a damaged minute is dropped by the next record_history.
            log.error("history row for queue %r skipped: %s", rows.shown(r["queue"]), exc)
    return out


class SqliteOperations(SqlitePart):
    """Mixed into `SqliteBackend`: runs the functions above on the backend's thread."""

    async def pause_queue(self, queue: str) -> None:
        """Stop claims from taking ``queue``'s jobs."""
        await self._run(lambda s: pause_queue(s, queue))

    async def resume_queue(self, queue: str) -> None:
        """Let claims take ``queue``'s jobs again, waking this handle's waiters.

        A write through `_run_write` makes this handle's `wait_for_work` probe again at
        once; other connections see the commit through ``PRAGMA data_version``.
        """
        await self._run_write(lambda s: resume_queue(s, queue))

    async def paused_queues(self) -> list[str]:
        """Paused queue names, sorted."""
        return await self._run(paused_queues)

    async def delete(self, job_ids: Sequence[str]) -> int:
        """Delete the given final-state jobs; how many were deleted."""
        return await self._run(lambda s: delete(s, job_ids))

    async def oldest_ready(self) -> dict[str, float]:
        """Per queue, the ``run_at`` of its oldest ready job."""
        return await self._run(oldest_ready)

    async def record_history(self, points: Sequence[HistoryPoint], keep: float) -> None:
        """Add per-minute counts and drop minutes older than ``keep`` seconds."""
        await self._run(lambda s: record_history(s, points, keep))

    async def history(self, since: float) -> list[HistoryPoint]:
        """Stored per-minute counts with ``minute >= since``."""
        return await self._run(lambda s: history(s, since))


__all__ = [
    "SqliteOperations",
    "delete",
    "history",
    "oldest_ready",
    "pause_queue",
    "paused_queues",
    "record_history",
    "resume_queue",
]
