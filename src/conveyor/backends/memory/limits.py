"""`MemoryLimits`: rate windows and concurrency slots in the shared `MemoryState`.

A rate window is the list of start times still inside it; a key's slots map each holder to
its expiry. Both are pruned on use, at the handle's clock, so nothing ages on its own.
"""

from __future__ import annotations

from conveyor.backends.capabilities import Limits
from conveyor.backends.memory.state import MemoryPart


class MemoryLimits(MemoryPart, Limits):
    """`Limits` for the memory store."""

    async def rate_acquire(self, key: str, limit: int, period: float) -> float:
        with self._s.lock:
            now = self.clock.now()
            starts = [t for t in self._s.rates.get(key, []) if t > now - period]
            self._s.rates[key] = starts
            if len(starts) >= limit:
                return max(starts[-limit] + period - now, 1e-6)
            starts.append(now)
            return 0.0

    async def slot_acquire(self, key: str, holder: str, limit: int, ttl: float) -> bool:
        with self._s.lock:
            now = self.clock.now()
            held = {h: t for h, t in self._s.slots.get(key, {}).items() if t > now}
            self._s.slots[key] = held
            if holder not in held and len(held) >= limit:
                return False
            held[holder] = now + ttl
            return True

    async def slot_release(self, key: str, holder: str) -> None:
        with self._s.lock:
            self._s.slots.get(key, {}).pop(holder, None)
