"""Per-minute history and the live-worker registry on PostgreSQL.

History rows are in `operations.sql` (summed per minute and queue, written in key order so
concurrent writers cannot deadlock); the registry's statements are in `queries.sql`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from conveyor.backends.capabilities import Telemetry
from conveyor.backends.postgres.database import Database
from conveyor.backends.postgres.records import to_worker
from conveyor.backends.postgres.rows import to_json
from conveyor.backends.unreadable import UnreadableRecord
from conveyor.job import HistoryPoint, WorkerInfo

log = logging.getLogger("conveyor.postgres")


class PostgresTelemetry(Telemetry):
    """`Telemetry` on PostgreSQL: a history table and a workers table with expiries."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record_history(self, points: Sequence[HistoryPoint], keep: float) -> None:
        """Add ``points`` to the per-minute counts; drop minutes older than ``keep`` seconds."""
        await self.db.file_rows(
            "operations.sql",
            "record_history",
            {
                "now": self.db.now(),
                "keep": keep,
                "minutes": [p.minute for p in points],
                "queues": [p.queue for p in points],
                "succeeded": [p.succeeded for p in points],
                "failed": [p.failed for p in points],
            },
        )

    async def history(self, since: float) -> list[HistoryPoint]:
        """Per-minute counts with ``minute >= since``, by minute then queue."""
        rows = await self.db.file_rows("operations.sql", "history", {"since": since})
        return [
            HistoryPoint(int(r["minute"]), r["queue"], int(r["succeeded"]), int(r["failed"]))
            for r in rows
        ]

    async def register_worker(self, info: WorkerInfo, ttl: float) -> None:
        """Record or refresh a live worker (and drop expired ones)."""
        await self.db.rows(
            "register_worker",
            {
                "now": self.db.now(),
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
        await self.db.rows("unregister_worker", {"id": worker_id})

    async def workers(self) -> list[WorkerInfo]:
        """Live workers, in registration order; a registry row that cannot be read is skipped.

        Such a row is logged and left alone: it expires like any other, and the next worker
        to register deletes it (`register_worker`).
        """
        found: list[WorkerInfo] = []
        for row in await self.db.rows("workers", {"now": self.db.now()}):
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
