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


async def test_the_lease_index_scores_whole_seconds_and_the_record_keeps_the_exact_expiry(
    backend: RedisBackend, raw: Redis
) -> None:
    # Given claimed jobs, one of them then extended by a heartbeat
    await backend.enqueue([job(n) for n in range(3)])
    claimed = await backend.claim("w", Routing(), 10, 30.0)
    extended = claimed[0]
    assert await backend.extend([Lease(extended.id, extended.lease_token or "")], 45.0) == [True]
    # Then each job's score in the lease index is its exact expiry rounded up to a whole
    # second (a small ZSET compares whole numbers without parsing them), and its record
    # keeps the exact expiry
    for entry in claimed:
        score = raw.zscore(backend.keys.leases, entry.id)
        exact = float(raw.hget(backend.keys.job(entry.id), "lease_expires_at") or 0)
        assert score is not None and score == float(int(score))
        assert exact <= score < exact + 1
    # and a lease past its expiry is still recovered by the reaper
    raw.zadd(backend.keys.leases, {claimed[1].id: time.time() - 1})
    report = await backend.recover(max_recoveries=3)
    assert report.recovered == 1
    record = await backend.get(claimed[1].id)
    assert record is not None and record.state is State.READY
