"""The Redis store's newest-first listing: jobs waiting in a lane's LIST part are listed
from there, every other job from the index, buckets of 128 seqs that are each a small
ZSET, registered in ``{P}:buckets``; a job joins the index when it leaves its LIST. A
store made before the buckets (one ``{P}:all`` ZSET) is moved into them by the first
query. Real Redis, written to raw where a test needs an old layout or damage."""

from __future__ import annotations

import time

from redis import Redis

from conveyor.backends.redis import RedisBackend
from conveyor.job import JobQuery, Lease, State

from .damage_redis_support import backend, claim_all, job, raw

__all__ = ["backend", "raw"]  # fixtures, imported for pytest


async def listed(backend: RedisBackend, **query: object) -> list[str]:
    return [j.id for j in await backend.admin.query(JobQuery(**query))]  # type: ignore[arg-type]


async def test_pages_run_newest_first_across_buckets_and_lanes(
    backend: RedisBackend, raw: Redis
) -> None:
    # Given 300 jobs (three buckets' worth of seqs), in two lanes, half of them claimed
    ids = [r.id for r in await backend.enqueue([job(n, task=f"t{n % 2}") for n in range(300)])]
    k = backend.keys
    # (jobs waiting in a LIST are listed from there: no bucket yet)
    assert raw.exists(k.buckets, f"{k.all}:0") == 0
    newest = ids[::-1]
    assert await listed(backend, limit=1000) == newest
    running = [j.id for j in await claim_all(backend, limit=150)]
    assert running == ids[:150]
    assert raw.zcard(f"{k.all}:0") == 128 and raw.zcard(f"{k.all}:1") == 22
    assert raw.zrange(k.buckets, 0, -1) == [b"0", b"1"]
    assert raw.object("encoding", f"{k.all}:0") == b"listpack"  # compact: 128 entries
    # Then pages cross buckets and lanes without a gap or a repeat
    pages = [await listed(backend, limit=50, offset=o) for o in range(0, 350, 50)]
    assert [i for page in pages for i in page] == newest
    assert await listed(backend, limit=1000) == newest
    assert await listed(backend, limit=5, offset=148) == newest[148:153]
    # and a filter walks them in the same order
    assert await listed(backend, states=(State.RUNNING,), limit=2) == running[::-1][:2]
    assert await listed(backend, states=(State.READY,), limit=3, offset=147) == newest[147:150]
    assert await listed(backend, task="t1", limit=2) == [ids[299], ids[297]]
    assert await listed(backend, task="t1", states=(State.RUNNING,), limit=1) == [ids[149]]


async def test_purged_jobs_leave_their_buckets_and_empty_ones_are_forgotten(
    backend: RedisBackend, raw: Redis
) -> None:
    # Given 260 jobs of which the first 200 ran and were purged
    ids = [r.id for r in await backend.enqueue([job(n) for n in range(260)])]
    for claimed in [await claim_all(backend, limit=100) for _ in range(2)]:
        for j in claimed:
            assert await backend.complete(Lease(j.id, j.lease_token or ""), None)
    assert await backend.admin.purge([State.SUCCEEDED]) == 200
    k = backend.keys
    assert raw.exists(f"{k.all}:0", f"{k.all}:1") == 0
    # When the jobs are listed (the 60 left wait in their lane's LIST)
    assert await listed(backend, limit=100) == ids[200:][::-1]
    # Then the emptied buckets are forgotten
    assert raw.exists(k.buckets) == 0
    for claimed in [await claim_all(backend, limit=100)]:
        for j in claimed:
            assert await backend.complete(Lease(j.id, j.lease_token or ""), None)
    assert await backend.admin.purge([State.SUCCEEDED]) == 60
    assert raw.zrange(k.buckets, 0, -1) == [b"1", b"2"]  # written by the claim
    assert await listed(backend) == []
    assert raw.exists(k.buckets) == 0


async def test_a_store_made_before_the_buckets_is_moved_into_them(
    backend: RedisBackend, raw: Redis
) -> None:
    # Given a store whose index is one ZSET (as stores made before the buckets have: their
    # ready jobs wait in the lanes' ZSET parts), with more entries than one call moves
    count = 10_050
    due = time.time() - 60
    ids = [r.id for r in await backend.enqueue([job(n, run_at=due) for n in range(count)])]
    k = backend.keys
    old = {}
    for bucket in raw.zrange(k.buckets, 0, -1):
        old.update(
            {
                m.decode(): s
                for m, s in raw.zrange(f"{k.all}:{bucket.decode()}", 0, -1, withscores=True)
            }
        )
        raw.delete(f"{k.all}:{bucket.decode()}")
    raw.delete(k.buckets)
    raw.zadd(k.all, old)
    assert raw.zcard(k.all) == count
    # When it is first queried
    page = await listed(backend, limit=3)
    # Then every job is in the buckets, in order, and the old index is gone
    assert page == ids[::-1][:3]
    assert raw.exists(k.all) == 0
    assert await listed(backend, limit=count + 1, offset=count - 2) == ids[1::-1]
    # and deleting a finished job takes it out of its bucket
    [j] = await claim_all(backend, limit=1)
    assert await backend.complete(Lease(j.id, j.lease_token or ""), None)
    assert await backend.admin.delete([j.id]) == 1
    assert raw.zscore(f"{k.all}:0", j.id) is None
    assert ids[0] not in await listed(backend, limit=count + 1)


async def test_a_damaged_bucket_or_registry_costs_its_entries_only(
    backend: RedisBackend, raw: Redis
) -> None:
    due = time.time() - 60  # jobs already due wait in a lane's ZSET part, in the index
    ids = [r.id for r in await backend.enqueue([job(n, run_at=due) for n in range(200)])]
    k = backend.keys
    # A bucket key of another type: the query skips it (and deletes it) and lists the rest
    raw.delete(f"{k.all}:0")
    raw.set(f"{k.all}:0", "garbage")
    assert await listed(backend, limit=500) == ids[128:][::-1]
    assert raw.exists(f"{k.all}:0") == 0
    # A registry of another type: the query makes it again from the buckets there are
    raw.delete(k.buckets)
    raw.set(k.buckets, "garbage")
    assert await listed(backend, limit=500) == ids[128:][::-1]
    assert raw.zrange(k.buckets, 0, -1) == [b"1"]
    # Enqueueing over a registry of another type resets it rather than failing
    raw.delete(k.buckets)
    raw.set(k.buckets, "garbage")
    more = [r.id for r in await backend.enqueue([job(n, run_at=due) for n in range(100)])]
    assert raw.zrange(k.buckets, 0, -1) == [b"1", b"2"]
    assert await listed(backend, limit=500) == (ids[128:] + more)[::-1]


async def test_a_job_cancelled_while_it_waits_in_its_lane_joins_the_index(
    backend: RedisBackend, raw: Redis
) -> None:
    ids = [r.id for r in await backend.enqueue([job(n) for n in range(3)])]
    k = backend.keys
    assert await backend.admin.cancel(ids[1])
    assert raw.zrange(f"{k.all}:0", 0, -1) == [ids[1].encode()]
    assert raw.lrange(f"{k.base}fifo:17:defaultapp.work", 0, -1) == [
        ids[0].encode(),
        ids[2].encode(),
    ]
    assert await listed(backend) == ids[::-1]
    assert await listed(backend, states=(State.CANCELLED,)) == [ids[1]]
