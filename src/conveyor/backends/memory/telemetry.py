"""`MemoryTelemetry`: per-minute history and the live-worker registry.

History is a table keyed by (minute label, queue) holding [succeeded, failed]; a worker
entry carries its expiry on the handle's clock and is dropped once read past it.
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.backends.capabilities import Telemetry
from conveyor.backends.memory.state import MemoryPart, copy_worker
from conveyor.job import HistoryPoint, WorkerInfo


class MemoryTelemetry(MemoryPart, Telemetry):
    """`Telemetry` for the memory store."""

    async def record_history(self, points: Sequence[HistoryPoint], keep: float) -> None:
        with self._s.lock:
            table = self._s.history
            for p in points:
                row = table.setdefault((p.minute, p.queue), [0, 0])
                row[0] += p.succeeded
                row[1] += p.failed
            cutoff = self.clock.now() - keep
            for k in [k for k in table if k[0] < cutoff]:
                del table[k]

    async def history(self, since: float) -> list[HistoryPoint]:
        with self._s.lock:
            return [
                HistoryPoint(minute, queue, ok, bad)
                for (minute, queue), (ok, bad) in sorted(self._s.history.items())
                if minute >= since
            ]

    async def register_worker(self, info: WorkerInfo, ttl: float) -> None:
        with self._s.lock:
            now = self.clock.now()
            info = copy_worker(info)
            info.last_seen = now
            self._s.workers[info.id] = (info, now + ttl)

    async def unregister_worker(self, worker_id: str) -> None:
        with self._s.lock:
            self._s.workers.pop(worker_id, None)

    async def workers(self) -> list[WorkerInfo]:
        with self._s.lock:
            now = self.clock.now()
            live = {k: v for k, v in self._s.workers.items() if v[1] > now}
            self._s.workers = live
            return [copy_worker(info) for info, _ in live.values()]
