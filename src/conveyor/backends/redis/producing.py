"""Storing new jobs on Redis: ``enqueue.lua``'s keys, arguments and reply, and the calls
that send big batches in chunks. `RedisBackend.enqueue` and `RedisScheduling.enqueue_tick`
(whose ``tick.lua`` ends with enqueue.lua's code) both build on it."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from conveyor.backends.redis import codec
from conveyor.backends.redis.connection import RedisConnection, translated
from conveyor.backends.redis.keys import Keys
from conveyor.backends.redis.scripts import load_all, script
from conveyor.job import EnqueueResult, NewJob

#: Jobs per enqueue script call: bigger batches are split (and pipelined), so one call
#: never blocks Redis for long.
ENQUEUE_CHUNK = 1000


@functools.cache
def enqueue_keys(k: Keys) -> tuple[str, ...]:
    """KEYS of enqueue.lua (and the first eight of tick.lua); built once per store, as a
    single-call enqueue is the hot path."""
    return (k.all, k.seq, k.lanes, k.scheduled, k.unique, k.counts, k.waiters, k.paused)


def enqueue_args(jobs: Sequence[NewJob]) -> list[Any]:
    """enqueue.lua's ARGV after the prefix and now: the count, then each job's fields."""
    args: list[Any] = [len(jobs)]
    job_args = codec.job_args
    for job in jobs:
        args += job_args(job)
    return args


def results(jobs: Sequence[NewJob], reply: list[bytes]) -> list[EnqueueResult]:
    """enqueue.lua's reply: per job, ``b""`` if stored under its own id, else the id of
    the job that already existed."""
    return [
        EnqueueResult(job.id) if not got else EnqueueResult(got.decode(), existing=True)
        for job, got in zip(jobs, reply, strict=True)
    ]


def _chunks(jobs: Sequence[NewJob]) -> list[Sequence[NewJob]]:
    return [jobs[i : i + ENQUEUE_CHUNK] for i in range(0, len(jobs), ENQUEUE_CHUNK)]


async def enqueue(conn: RedisConnection, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
    """Store ``jobs`` in order: one script call per `ENQUEUE_CHUNK` jobs, one round trip."""
    keys = enqueue_keys(conn.keys)
    if len(jobs) <= ENQUEUE_CHUNK:
        return results(jobs, await conn.run("enqueue", keys, *enqueue_args(jobs)))
    chunks = _chunks(jobs)
    with translated(conn.target):
        client = conn.client()
        await load_all(client)  # a pipeline cannot load a missing script midway
        async with client.pipeline(transaction=False) as pipe:
            for chunk in chunks:
                pipe.evalsha(
                    script("enqueue").sha,
                    len(keys),
                    *keys,
                    conn.keys.base,
                    conn.now(),
                    *enqueue_args(chunk),
                )
            replies = await pipe.execute()
    return [r for chunk, reply in zip(chunks, replies, strict=True) for r in results(chunk, reply)]


def enqueue_sync(conn: RedisConnection, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
    """`enqueue` on the sync client, one script call per chunk."""
    keys = enqueue_keys(conn.keys)
    out: list[EnqueueResult] = []
    for chunk in _chunks(jobs):
        out += results(chunk, conn.run_sync("enqueue", keys, *enqueue_args(chunk)))
    return out
