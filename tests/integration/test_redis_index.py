"""The Redis store's newest-first index of every job: buckets of 128 seqs, each a small
ZSET, registered in ``{P}:buckets``; a store made before them (one ``{P}:all`` ZSET) is
moved into them by the first query. Real Redis, written to raw where a test needs an old
layout or damage."""

from __future__ import annotations

from redis import Redis

from conveyor.backends.redis import RedisBackend
from conveyor.job import JobQuery, Lease, State

from .damage_redis_support import backend, claim_all, job, raw

__all__ = ["backend", "raw"]  # fixtures, imported for pytest


async def listed(backend: RedisBackend, **query: object) -> list[str]:
    return [j.id for j in await backend.admin.query(JobQuery(**query))]  # type: ignore[arg-type]


async def test_pages_run_newest_first_across_buckets(backend: RedisBackend, raw: Redis) -> None:
    # Given 300 jobs: three buckets, the last one still filling
    ids = [r.id for r in await backend.enqueue([job(n) for n in range(300)])]
    k = backend.keys
    assert raw.zrange(k.buckets, 0, -1) == [b"0", b"1", b"2"]
    assert raw.object("encoding", f"{k.all}:0") == b"listpack"  # compact: 128 entries
    newest = ids[::-1]
    # Then pages cross bucket boundaries without a gap or a repeat
    pages = [await listed(backend, limit=50, offset=o) for o in range(0, 350, 50)]
    assert [i for page in pages for i in page] == newest
    assert await listed(backend, limit=1000) == newest
    assert await listed(backend, limit=5, offset=170) == newest[170:175]
    # and a filter walks them in the same order
    [first] = await claim_all(backend, limit=1)
    assert await listed(backend, states=(State.RUNNING,)) == [first.id] == [ids[0]]
    assert await listed(backend, states=(State.READY,), limit=3, offset=297) == newest[297:299]


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
    assert raw.exists(f"{k.all}:0") == 0 and raw.zcard(f"{k.all}:1") == 56
    # When the index is read
    assert await listed(backend, limit=100) == ids[200:][::-1]
    # Then the emptied bucket is forgotten; the one still filling is kept even when empty
    assert raw.zrange(k.buckets, 0, -1) == [b"1", b"2"]
    await backend.admin.delete([])  # nothing to delete: no change
    for claimed in [await claim_all(backend, limit=100)]:
        for j in claimed:
            assert await backend.complete(Lease(j.id, j.lease_token or ""), None)
    assert await backend.admin.purge([State.SUCCEEDED]) == 60
    assert await listed(backend) == []
    assert raw.zrange(k.buckets, 0, -1) == [b"2"]


async def test_a_store_made_before_the_buckets_is_moved_into_them(
    backend: RedisBackend, raw: Redis
) -> None:
    # Given a store whose index is one ZSET (as stores made before the buckets have),
    # with more entries than one query call moves
    count = 10_050
    ids = [r.id for r in await backend.enqueue([job(n) for n in range(count)])]
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
    ids = [r.id for r in await backend.enqueue([job(n) for n in range(200)])]
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
    more = [r.id for r in await backend.enqueue([job(n) for n in range(100)])]
    assert raw.zrange(k.buckets, 0, -1) == [b"1", b"2"]
    assert await listed(backend, limit=500) == (ids[128:] + more)[::-1]
