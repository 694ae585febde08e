"""enqueue.lua writes a batch's ready entries to their lane in slices of at most 1,000
arguments: every job of a large batch reaches its lane, and a lane of another type is the
only failure that resets it."""

from __future__ import annotations

from redis import Redis

from conveyor.backends.redis import RedisBackend
from conveyor.job import Routing

from .damage_redis_support import backend, job, raw

__all__ = ["backend", "raw"]  # fixtures, imported for pytest

LANE = "17:defaultapp.work"  # normal priority, queue "default", task "app.work"


async def test_every_job_of_a_full_chunk_reaches_its_lane(
    backend: RedisBackend, raw: Redis
) -> None:
    # Given one call of 1,000 jobs into one lane (2,000 ZADD arguments: two slices)
    ids = [r.id for r in await backend.enqueue([job(n) for n in range(1000)])]
    # Then the lane holds all of them, and they are claimed in order
    assert raw.zcard(f"{backend.keys.base}ready:{LANE}") == 1000
    claimed = await backend.claim("w", Routing(), 1000, 30.0)
    assert [j.id for j in claimed] == ids
