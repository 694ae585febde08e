"""The scheduler's part of the Backend protocol on Redis: ``lease.lua`` and ``tick.lua``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor.backends.redis.connection import translated
from conveyor.backends.redis.part import RedisPart
from conveyor.backends.redis.quarantine import log
from conveyor.job import EnqueueResult, NewJob


class RedisScheduling(RedisPart):
    """Mixed into `RedisBackend`: leader leases and atomic tick records."""

    def _enqueue_keys(self) -> list[str]:
        raise NotImplementedError  # provided by RedisBackend

    def _enqueue_args(self, jobs: Sequence[NewJob]) -> list[Any]:
        raise NotImplementedError  # provided by RedisBackend

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew a named lease on the backend's clock (see `Backend.acquire_lease`)."""
        held = await self._run("lease", [self.keys.locks], "acquire", name, owner, repr(float(ttl)))
        return bool(held == 1)

    async def release_lease(self, name: str, owner: str) -> None:
        """Give up a named lease held by ``owner``."""
        await self._run("lease", [self.keys.locks], "release", name, owner, "0")

    async def schedule_state(self, names: Sequence[str]) -> dict[str, float | None]:
        """The last tick recorded per entry (one HMGET)."""
        if not names:
            return {}
        with translated(self.target):
            values = await self._client().hmget(self.keys.schedules, list(names))
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
        args = self._enqueue_args(jobs)[2:]  # _run adds the prefix and the time itself
        reply = await self._run(
            "tick",
            [*self._enqueue_keys(), self.keys.schedules],
            *args,
            name,
            repr(float(tick)),
        )
        if reply is None:
            return None
        return [
            EnqueueResult(job.id) if not got else EnqueueResult(got.decode(), existing=True)
            for job, got in zip(jobs, reply, strict=True)
        ]
