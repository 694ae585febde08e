"""`MemoryScheduling`: the scheduler's leader lease and recorded cron ticks.

A tick's jobs are added under the same lock that records the tick, so no two schedulers
can enqueue one tick twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.backends.capabilities import Scheduling
from conveyor.backends.memory.state import MemoryPart
from conveyor.job import EnqueueResult, NewJob


class MemoryScheduling(MemoryPart, Scheduling):
    """`Scheduling` for the memory store."""

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        with self._s.lock:
            now = self.clock.now()
            holder = self._s.leases.get(name)
            if holder is not None and holder[0] != owner and holder[1] > now:
                return False
            self._s.leases[name] = (owner, now + ttl)
            return True

    async def release_lease(self, name: str, owner: str) -> None:
        with self._s.lock:
            holder = self._s.leases.get(name)
            if holder is not None and holder[0] == owner:
                del self._s.leases[name]

    async def schedule_state(self, names: Sequence[str]) -> dict[str, float | None]:
        with self._s.lock:
            return {name: self._s.ticks.get(name) for name in names}

    async def enqueue_tick(
        self, name: str, tick: float, jobs: Sequence[NewJob]
    ) -> list[EnqueueResult] | None:
        with self._s.lock:
            last = self._s.ticks.get(name)
            if last is not None and last >= tick:
                return None
            self._s.ticks[name] = tick
            out = self._s.add(jobs, self.clock.now())
        self._s.wake()
        return out
