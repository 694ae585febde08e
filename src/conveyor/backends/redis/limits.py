"""Rate windows and concurrency slots on Redis: ``rate.lua`` and ``slot.lua``, each one
atomic step on the store's clock."""

from __future__ import annotations

import secrets

from conveyor.backends.capabilities import Limits
from conveyor.backends.redis.connection import RedisConnection


class RedisLimits(Limits):
    """`Limits` on one handle's connection: a ZSET of start times per rate key, a ZSET of
    holder expiries per concurrency key."""

    def __init__(self, conn: RedisConnection) -> None:
        self._conn = conn

    async def rate_acquire(self, key: str, limit: int, period: float) -> float:
        """``0.0`` when a start is granted, else the seconds until one may be."""
        wait = await self._conn.run(
            "rate",
            [self._conn.keys.rate(key)],
            int(limit),
            repr(float(period)),
            secrets.token_hex(8),
        )
        return float(wait)

    async def slot_acquire(self, key: str, holder: str, limit: int, ttl: float) -> bool:
        """Take or renew ``holder``'s slot of ``key`` until ``ttl`` seconds from now."""
        held = await self._conn.run(
            "slot", [self._conn.keys.slots(key)], "acquire", holder, int(limit), repr(float(ttl))
        )
        return bool(held == 1)

    async def slot_release(self, key: str, holder: str) -> None:
        """Free ``holder``'s slot of ``key``, if it holds one."""
        await self._conn.run("slot", [self._conn.keys.slots(key)], "release", holder, "0", "0")
