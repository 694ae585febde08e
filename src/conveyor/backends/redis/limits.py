"""Rate windows, concurrency slots and ``defer`` on Redis: ``rate.lua``, ``slot.lua`` and
``defer.lua``, each one atomic step on the backend's clock."""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from conveyor.backends.redis.part import RedisPart
from conveyor.job import Lease


class RedisLimits(RedisPart):
    """Mixed into `RedisBackend`: the backend side of rate and concurrency limits."""

    async def defer(
        self, lease: Lease, delay: float, headers: dict[str, Any] | None = None
    ) -> bool:
        """Back to scheduled (or ready) without using an attempt; ``False`` if fenced."""
        k = self.keys
        ok = await self._run(
            "defer",
            [k.leases, k.lanes, k.scheduled, k.counts, k.counters, k.waiters, k.paused],
            lease.job_id,
            lease.token,
            repr(float(delay)),
            # Header values were checked when the job was built (JSON types, no NaN).
            b"" if headers is None else b"h" + orjson.dumps(headers),
        )
        return bool(ok == b"1")

    async def rate_acquire(self, key: str, limit: int, period: float) -> float:
        """``0.0`` when a start is granted, else the seconds until one may be."""
        wait = await self._run(
            "rate",
            [self.keys.rate(key)],
            int(limit),
            repr(float(period)),
            secrets.token_hex(8),
        )
        return float(wait)

    async def slot_acquire(self, key: str, holder: str, limit: int, ttl: float) -> bool:
        """Take or renew ``holder``'s slot of ``key`` until ``ttl`` seconds from now."""
        held = await self._run(
            "slot", [self.keys.slots(key)], "acquire", holder, int(limit), repr(float(ttl))
        )
        return bool(held == 1)

    async def slot_release(self, key: str, holder: str) -> None:
        """Free ``holder``'s slot of ``key``, if it holds one."""
        await self._run("slot", [self.keys.slots(key)], "release", holder, "0", "0")
