"""Scripts that write a batch's index entries and totals once per call, not once per job:
enqueue.lua's ready lane (in slices of at most 1,000 arguments), claim.lua's leases and
complete.lua's succeeded index and totals. Every job of a batch is written, and a fenced
job in the batch changes nothing."""

from __future__ import annotations

import asyncio
import time

from redis import Redis

from conveyor.backends.redis import RedisBackend
from conveyor.job import Lease, Priority, Routing, State

from .damage_redis_support import backend, job, raw

__all__ = ["backend", "raw"]  # fixtures, imported for pytest

LANE = "17:defaultapp.work"  # normal priority, queue "default", task "app.work"


async def totals(backend: RedisBackend) -> dict[tuple[str, Priority, State], int]:
    return {
        (s.queue, s.priority, state): n
        for s in await backend.admin.stats()
        for state, n in s.counts.items()
        if n
    }


async def test_every_job_of_a_full_chunk_reaches_its_lane(
    backend: RedisBackend, raw: Redis
) -> None:
    # Given one call of 1,000 jobs to run now (the lane's LIST part) and one of 1,000 jobs
    # already due (its ZSET part: 2,000 ZADD arguments, two slices)
    fresh = [r.id for r in await backend.enqueue([job(n) for n in range(1000)])]
    due = time.time() - 60
    late = [r.id for r in await backend.enqueue([job(n, run_at=due) for n in range(1000)])]
    # Then the lane holds all of them, and they are claimed in (run_at, enqueue) order
    assert raw.llen(f"{backend.keys.base}fifo:{LANE}") == 1000
    assert raw.zcard(f"{backend.keys.base}ready:{LANE}") == 1000
    claimed = await backend.claim("w", Routing(), 2000, 30.0)
    assert [j.id for j in claimed] == late + fresh


async def test_a_batch_of_claims_and_acknowledgements_is_counted_job_by_job(
    backend: RedisBackend, raw: Redis
) -> None:
    # Given jobs in two queues and two priorities, all claimed in one call
    jobs = [job(n, queue="mail") for n in range(3)]
    jobs += [job(n, priority=Priority.HIGH) for n in range(4)]
    await backend.enqueue(jobs)
    claimed = await backend.claim("w", Routing(), 10, 30.0)
    assert len(claimed) == 7
    assert raw.zcard(backend.keys.leases) == 7
    assert await totals(backend) == {
        ("mail", Priority.NORMAL, State.RUNNING): 3,
        ("default", Priority.HIGH, State.RUNNING): 4,
    }
    # When they are acknowledged together, one with a wrong lease token (fenced)
    stale = claimed[0]
    leases = [Lease(j.id, j.lease_token or "") for j in claimed[1:]]
    oks = await asyncio.gather(
        backend.complete(Lease(stale.id, "not-its-token"), None),
        *(backend.complete(lease, b"1") for lease in leases),
    )
    # Then each good one is counted once, and the fenced one is still running
    assert oks == [False] + [True] * 6
    stale_queue = "mail" if stale.queue == "mail" else "default"
    expected = {
        ("mail", Priority.NORMAL, State.SUCCEEDED): 3,
        ("default", Priority.HIGH, State.SUCCEEDED): 4,
    }
    stale_prio = Priority.NORMAL if stale_queue == "mail" else Priority.HIGH
    expected[(stale_queue, stale_prio, State.SUCCEEDED)] -= 1
    expected[(stale_queue, stale_prio, State.RUNNING)] = 1
    assert await totals(backend) == expected
    assert raw.zcard(backend.keys.leases) == 1
    assert raw.zcard(backend.keys.done(State.SUCCEEDED)) == 6
