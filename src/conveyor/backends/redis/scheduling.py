"""The scheduler's capability on Redis: leader leases (``lease.lua``) and ticks recorded
together with their jobs (``tick.lua``)."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.backends.capabilities import Scheduling
from conveyor.backends.redis.connection import RedisConnection, translated
from conveyor.backends.redis.producing import enqueue_args, enqueue_keys, results
from conveyor.backends.redis.quarantine import log
from conveyor.job import EnqueueResult, NewJob


class RedisScheduling(Scheduling):
    """`Scheduling` on one handle's connection: leases in ``locks``, ticks in ``schedules``."""

    def __init__(self, conn: RedisConnection) -> None:
        self._conn = conn

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew a named lease on the store's clock (see `Scheduling.acquire_lease`)."""
        held = await self._conn.run(
            "lease", [self._conn.keys.locks], "acquire", name, owner, repr(float(ttl))
        )
        return bool(held == 1)

    async def release_lease(self, name: str, owner: str) -> None:
        """Give up a named lease held by ``owner``."""
        await self._conn.run("lease", [self._conn.keys.locks], "release", name, owner, "0")

    async def schedule_state(self, names: Sequence[str]) -> dict[str, float | None]:
        """The last tick recorded per entry (one HMGET)."""
        if not names:
            return {}
        with translated(self._conn.target):
            values = await self._conn.client().hmget(self._conn.keys.schedules, list(names))
        out: dict[str, float | None] = {}
        for name, value in zip(names, values, strict=True):
            try:
                out[name] = None if value is None else float(value)
            except ValueError:
                # Damage: counted as no tick, as tick.lua does (and overwrites it).
                log.error("schedule %s has an unreadable last tick %r: none", name, value)
                out[name] = None
        return out

    async def enqueue_tick(
        self, name: str, tick: float, jobs: Sequence[NewJob]
    ) -> list[EnqueueResult] | None:
        """Record the tick and enqueue its jobs in one script; ``None`` if not new."""
        k = self._conn.keys
        reply = await self._conn.run(
            "tick",
            [*enqueue_keys(k), k.schedules],
            *enqueue_args(jobs),
            name,
            repr(float(tick)),
        )
        return None if reply is None else results(jobs, reply)
