"""Pausing queues, deleting jobs, oldest waits and throughput history on PostgreSQL.

A mixin of `PostgresBackend` (queries in `operations.sql`); the claim's side of pausing is
in `queries.sql`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor.backends.postgres.part import PostgresPart
from conveyor.backends.postgres.rows import Row
from conveyor.job import HistoryPoint


class PostgresOperations(PostgresPart):
    """What the dashboard and alerts steer and read."""

    async def _op_rows(self, name: str, params: dict[str, Any]) -> list[Row]:
        return await self._file_rows("operations.sql", name, params)

    # -- pausing ---------------------------------------------------------------------------
    async def pause_queue(self, queue: str) -> None:
        """Stop ``claim`` from taking ``queue``'s jobs (idempotent)."""
        await self._op_rows("pause_queue", {"now": self._now(), "queue": queue})

    async def resume_queue(self, queue: str) -> None:
        """Let ``claim`` take ``queue``'s jobs again; NOTIFY wakes idle workers."""
        await self._op_rows("resume_queue", {"queue": queue, "channel": self._channel})

    async def paused_queues(self) -> list[str]:
        """The paused queues, sorted."""
        return [r["queue"] for r in await self._op_rows("paused_queues", {})]

    # -- repairing -------------------------------------------------------------------------
    async def delete(self, job_ids: Sequence[str]) -> int:
        """Delete the given jobs that are final; how many went."""
        if not job_ids:
            return 0
        rows = await self._op_rows("delete_jobs", {"ids": list(dict.fromkeys(job_ids))})
        return int(rows[0]["deleted"])

    # -- reading ---------------------------------------------------------------------------
    async def oldest_ready(self) -> dict[str, float]:
        """Per queue with ready (or due) jobs, the oldest one's ``run_at``."""
        rows = await self._op_rows("oldest_ready", {"now": self._now()})
        return {r["queue"]: float(r["oldest"]) for r in rows}

    async def record_history(self, points: Sequence[HistoryPoint], keep: float) -> None:
        """Add ``points`` to the per-minute counts; drop minutes older than ``keep`` seconds."""
        await self._op_rows(
            "record_history",
            {
                "now": self._now(),
                "keep": keep,
                "minutes": [p.minute for p in points],
                "queues": [p.queue for p in points],
                "succeeded": [p.succeeded for p in points],
                "failed": [p.failed for p in points],
            },
        )

    async def history(self, since: float) -> list[HistoryPoint]:
        """Per-minute counts with ``minute >= since``, by minute then queue."""
        rows = await self._op_rows("history", {"since": since})
        return [
            HistoryPoint(int(r["minute"]), r["queue"], int(r["succeeded"]), int(r["failed"]))
            for r in rows
        ]
