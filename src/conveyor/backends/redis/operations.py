"""What the dashboard and alerts steer and read, on Redis: pause and resume
(``pause.lua``), delete (``delete.lua``), the oldest ready job per queue (``oldest.lua``)
and per-minute throughput history (``history.lua``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor.backends.redis.admin import SWEEP_BATCH
from conveyor.backends.redis.connection import translated
from conveyor.backends.redis.part import RedisPart
from conveyor.backends.redis.quarantine import log, show
from conveyor.job import HistoryPoint, State

#: History points sent per script call.
HISTORY_BATCH = 500


class RedisOperations(RedisPart):
    """Mixed into `RedisBackend`: pausing queues, deleting jobs, oldest waits, history."""

    # -- pause and resume ----------------------------------------------------------------
    def _pause_keys(self) -> list[str]:
        return [self.keys.paused, self.keys.lanes, self.keys.waiters]

    async def pause_queue(self, queue: str) -> None:
        """Stop claims of ``queue``'s jobs (enqueueing goes on); idempotent."""
        await self._run("pause", self._pause_keys(), "pause", queue)

    async def resume_queue(self, queue: str) -> None:
        """Let ``queue``'s jobs be claimed again, waking parked workers for them."""
        await self._run("pause", self._pause_keys(), "resume", queue)

    async def paused_queues(self) -> list[str]:
        """The paused queues, sorted (one SMEMBERS)."""
        with translated(self.target):
            names = await self._client().smembers(self.keys.paused)
        return sorted(n.decode() if isinstance(n, bytes) else n for n in names)

    # -- delete --------------------------------------------------------------------------
    async def delete(self, job_ids: Sequence[str]) -> int:
        """Delete the final-state jobs among ``job_ids``, `SWEEP_BATCH` per script call."""
        k = self.keys
        keys = [
            k.all,
            k.counts,
            k.unique,
            k.done(State.SUCCEEDED),
            k.done(State.DEAD),
            k.done(State.CANCELLED),
        ]
        ids = list(dict.fromkeys(job_ids))
        total = 0
        for i in range(0, len(ids), SWEEP_BATCH):
            total += int(await self._run("delete", keys, *ids[i : i + SWEEP_BATCH]))
        return total

    # -- oldest wait ---------------------------------------------------------------------
    async def oldest_ready(self) -> dict[str, float]:
        """Per queue with ready (or due) jobs: the oldest one's ``run_at``."""
        flat = await self._run("oldest", [self.keys.lanes, self.keys.scheduled])
        return {show(q): float(t) for q, t in zip(flat[::2], flat[1::2], strict=True)}

    # -- history -------------------------------------------------------------------------
    async def record_history(self, points: Sequence[HistoryPoint], keep: float) -> None:
        """Add per-minute counts atomically (HINCRBY), then prune minutes past ``keep``."""
        batches = [points[i : i + HISTORY_BATCH] for i in range(0, len(points), HISTORY_BATCH)]
        for batch in batches or [points]:
            args: list[Any] = []
            for p in batch:
                args += [int(p.minute), p.queue, int(p.succeeded), int(p.failed)]
            await self._run("history", [self.keys.history], "record", repr(float(keep)), *args)

    async def history(self, since: float) -> list[HistoryPoint]:
        """Stored per-minute counts with ``minute >= since``, by minute then queue."""
        flat = await self._run("history", [self.keys.history], "read", repr(float(since)))
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
