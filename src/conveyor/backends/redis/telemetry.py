"""The telemetry capability on Redis: per-minute throughput history (``history.lua``) and
the live-worker registry (``workers.lua``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor.backends.capabilities import Telemetry
from conveyor.backends.redis import codec
from conveyor.backends.redis.connection import RedisConnection
from conveyor.backends.redis.quarantine import log, show, worker_infos
from conveyor.job import HistoryPoint, WorkerInfo

#: History points sent per script call.
HISTORY_BATCH = 500


class RedisTelemetry(Telemetry):
    """`Telemetry` on one handle's connection: a HASH per stored minute, and a HASH of
    workers beside a ZSET of their drop-off times."""

    def __init__(self, conn: RedisConnection) -> None:
        self._conn = conn

    # -- history -------------------------------------------------------------------------
    async def record_history(self, points: Sequence[HistoryPoint], keep: float) -> None:
        """Add per-minute counts atomically (HINCRBY), then prune minutes past ``keep``."""
        key = [self._conn.keys.history]
        batches = [points[i : i + HISTORY_BATCH] for i in range(0, len(points), HISTORY_BATCH)]
        for batch in batches or [points]:
            args: list[Any] = []
            for p in batch:
                args += [int(p.minute), p.queue, int(p.succeeded), int(p.failed)]
            await self._conn.run("history", key, "record", repr(float(keep)), *args)

    async def history(self, since: float) -> list[HistoryPoint]:
        """Stored per-minute counts with ``minute >= since``, by minute then queue."""
        flat = await self._conn.run(
            "history", [self._conn.keys.history], "read", repr(float(since))
        )
        out: list[HistoryPoint] = []
        for minute, fields in zip(flat[::2], flat[1::2], strict=True):
            rows: dict[str, list[int]] = {}
            try:
                for name, value in zip(fields[::2], fields[1::2], strict=True):
                    row = rows.setdefault(name[1:].decode(), [0, 0])
                    row[0 if name[:1] == b"s" else 1] = int(value)
                at = int(minute)
            except ValueError as exc:  # damage: the next record resets it (history.lua)
                log.error("skipped unreadable throughput history minute %s: %s", show(minute), exc)
                continue
            out += [HistoryPoint(at, q, s, f) for q, (s, f) in sorted(rows.items())]
        return out

    # -- worker registry -------------------------------------------------------------------
    def _registry(self) -> list[str]:
        return [self._conn.keys.workers, self._conn.keys.workers_expiry]

    async def register_worker(self, info: WorkerInfo, ttl: float) -> None:
        """Record or refresh a live worker until ``ttl`` seconds from now."""
        await self._conn.run(
            "workers",
            self._registry(),
            "register",
            info.id,
            repr(float(ttl)),
            codec.worker_json(info),
        )

    async def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker that is shutting down."""
        await self._conn.run("workers", self._registry(), "unregister", worker_id, "0", "")

    async def workers(self) -> list[WorkerInfo]:
        """Live workers (expired entries are dropped on the way)."""
        flat = await self._conn.run("workers", self._registry(), "list", "", "0", "")
        return worker_infos(flat)
