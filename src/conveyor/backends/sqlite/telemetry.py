"""Throughput history and the live-worker registry on SQLite: the Telemetry capability.

What the dashboard and ``conveyor status`` read. Queries live in `telemetry.sql`; the
history table comes from schema step ``migrate_4``. Each function is one transaction on a
`Store` (writes are ``BEGIN IMMEDIATE``); `SqliteTelemetry` runs them on the handle's thread
through its `Runner`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from conveyor.backends.capabilities import Telemetry
from conveyor.backends.sqlite import rows, sql
from conveyor.backends.sqlite.runner import Runner
from conveyor.backends.sqlite.store import Store
from conveyor.job import HistoryPoint, WorkerInfo

log = logging.getLogger("conveyor.backends.sqlite")


def _q(name: str) -> str:
    return sql.load("telemetry.sql")[name]


def _exec(store: Store, name: str, params: dict[str, Any] | None = None) -> sqlite3.Cursor:
    return store.conn.execute(_q(name), params or {})


# -- history -----------------------------------------------------------------------------
def record_history(store: Store, points: Sequence[HistoryPoint], keep: float) -> None:
    """Sum ``points`` into the stored minutes and drop minutes older than ``keep`` seconds."""
    values = [
        {"minute": p.minute, "queue": p.queue, "succeeded": p.succeeded, "failed": p.failed}
        for p in points
    ]

    def txn() -> None:
        store.conn.executemany(_q("record_history"), values)
        _exec(store, "prune_history", {"cutoff": store.clock.now() - keep})
        if repaired := _exec(store, "repair_history").rowcount:
            log.error("history: dropped %d row(s) whose minute is not a number", repaired)

    store.write(txn)


def history(store: Store, since: float) -> list[HistoryPoint]:
    """Stored minutes from ``since`` on, by minute then queue."""
    out: list[HistoryPoint] = []
    for r in store.read(lambda: _exec(store, "history", {"since": since}).fetchall()):
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


# -- worker registry ---------------------------------------------------------------------
def register_worker(store: Store, info: WorkerInfo, ttl: float) -> None:
    """Upsert a worker's row with a fresh expiry."""
    params = {
        "id": info.id,
        "host": info.host,
        "pid": info.pid,
        "pool": info.pool,
        "queues": None if info.queues is None else rows.to_json(list(info.queues), "queues"),
        "started_at": info.started_at,
        "stats": rows.to_json(info.stats, f"the stats of worker {info.id}"),
    }

    def txn() -> None:
        now = store.clock.now()
        _exec(store, "drop_expired_workers", {"now": now})
        _exec(store, "register_worker", {**params, "now": now, "expires": now + ttl})

    store.write(txn)


def unregister_worker(store: Store, worker_id: str) -> None:
    """Remove a worker's row."""
    store.write(lambda: _exec(store, "unregister_worker", {"id": worker_id}))


def workers(store: Store) -> list[WorkerInfo]:
    """Live workers, in registration order."""
    found = store.read(lambda: _exec(store, "workers", {"now": store.clock.now()}).fetchall())
    out: list[WorkerInfo] = []
    for r in found:
        try:
            out.append(rows.worker_info(r))
        except (TypeError, ValueError) as exc:
            # It expires like any other row (a damaged expiry is dropped at once).
            log.error("worker registry entry %r skipped: %s", rows.shown(r["id"]), exc)
    return out


class SqliteTelemetry(Telemetry):
    """The Telemetry capability of one `SqliteBackend` handle, on that handle's `Runner`."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def record_history(self, points: Sequence[HistoryPoint], keep: float) -> None:
        """Add per-minute counts and drop minutes older than ``keep`` seconds."""
        await self._runner.run(lambda s: record_history(s, points, keep))

    async def history(self, since: float) -> list[HistoryPoint]:
        """Stored per-minute counts with ``minute >= since``."""
        return await self._runner.run(lambda s: history(s, since))

    async def register_worker(self, info: WorkerInfo, ttl: float) -> None:
        """Record or refresh a live worker."""
        await self._runner.run(lambda s: register_worker(s, info, ttl))

    async def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker."""
        await self._runner.run(lambda s: unregister_worker(s, worker_id))

    async def workers(self) -> list[WorkerInfo]:
        """Live workers."""
        return await self._runner.run(workers)
