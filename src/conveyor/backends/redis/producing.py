"""Storing new jobs on Redis: ``enqueue.lua``'s keys, arguments and reply, and the calls
that send big batches in chunks. `RedisBackend.enqueue` and `RedisScheduling.enqueue_tick`
(whose ``tick.lua`` ends with enqueue.lua's code) both build on it."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import orjson
from redis import Redis

from conveyor.backends.redis import wire
from conveyor.backends.redis.codec import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, bare_args
from conveyor.backends.redis.connection import RedisConnection, translated
from conveyor.backends.redis.keys import Keys
from conveyor.backends.redis.scripts import load_all, script
from conveyor.job import EnqueueResult, NewJob

#: Jobs per enqueue script call: bigger batches are split (and pipelined), so one call
#: never blocks Redis for long. A batch is not split further to overlap this process's
#: work with the server's: measured, four calls of 250 cost more (client CPU, server
#: calls) than the little packing they overlap, since every job must be built and
#: checked before any is sent.
ENQUEUE_CHUNK = 1000


@functools.cache
def enqueue_keys(k: Keys) -> tuple[str, ...]:
    """KEYS of enqueue.lua (and the first eight of tick.lua); built once per store, as a
    single-call enqueue is the hot path."""
    return (k.buckets, k.seq, k.lanes, k.scheduled, k.unique, k.counts, k.waiters, k.paused)


def enqueue_args(jobs: Sequence[NewJob]) -> list[Any]:
    """enqueue.lua's ARGV after the prefix and now: the count, then the jobs as runs of
    consecutive jobs that share every option (one run for a batch of one task's calls):
    the run's options once, then each job's id and payload (and unique key, when one of
    the run's jobs has one). A run's payloads are all kept whole, or all as their bare
    arguments (`codec.bare_args`)."""
    args: list[Any] = [len(jobs)]
    count = len(jobs)
    payloads = [bare_args(job.payload) for job in jobs]
    start = 0
    while start < count:
        first = jobs[start]
        bare = payloads[start] is not None
        end = start + 1
        while end < count and _same_run(first, jobs[end]) and (payloads[end] is not None) == bare:
            end += 1
        run = jobs[start:end] if start or end < count else jobs
        keyed = any(job.unique_key is not None for job in run)
        args += (
            end - start,
            first.task,
            first.queue,
            int(first.priority),
            # Header values were checked when the job was built (JSON types, no NaN).
            orjson.dumps(first.headers) if first.headers else "{}",
            # The built-in defaults are left out of the record (codec.DEFAULTS).
            "" if first.max_retries == DEFAULT_MAX_RETRIES else first.max_retries,
            "" if first.timeout == DEFAULT_TIMEOUT else repr(float(first.timeout)),
            _due(first),
            ("u" if keyed else "") + ("a" if bare else ""),
        )
        for i in range(start, end):
            job = jobs[i]
            payload = payloads[i] if bare else job.payload
            if keyed:
                key = job.unique_key
                args += (job.id, payload, "" if key is None else "u" + key)
            else:
                args += (job.id, payload)
        start = end
    return args


def _same_run(a: NewJob, b: NewJob) -> bool:
    """Whether ``b`` can share ``a``'s run: every field but the id, payload and unique key."""
    return (
        a.task == b.task
        and a.queue == b.queue
        and a.priority == b.priority
        and a.max_retries == b.max_retries
        and a.timeout == b.timeout
        and a.run_at == b.run_at
        and a.delay == b.delay
        and a.headers == b.headers
    )


def _due(job: NewJob) -> str:
    # "+" marks a delay: enqueue.lua adds the server's now, never this host's clock.
    if job.run_at is not None:
        return repr(float(job.run_at))
    return "" if job.delay is None else "+" + repr(float(job.delay))


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
    """`enqueue` on the sync client: one script call per `ENQUEUE_CHUNK` jobs, sent in one
    pipeline on a plain client (`wire.packable`)."""
    keys = enqueue_keys(conn.keys)
    if len(jobs) <= ENQUEUE_CHUNK:
        return results(jobs, conn.run_sync("enqueue", keys, *enqueue_args(jobs)))
    if not conn.target.wait_replicas:
        with translated(conn.target):
            client = conn.sync()
        if wire.packable(client):
            return _pipelined_sync(conn, client, keys, _chunks(jobs))
    out: list[EnqueueResult] = []
    for chunk in _chunks(jobs):
        out += results(chunk, conn.run_sync("enqueue", keys, *enqueue_args(chunk)))
    return out


def _pipelined_sync(
    conn: RedisConnection, client: Redis, keys: tuple[str, ...], parts: list[Sequence[NewJob]]
) -> list[EnqueueResult]:
    sha, base = script("enqueue").sha, conn.keys.base
    calls = (wire.pack(sha, keys, [base, conn.now(), *enqueue_args(part)]) for part in parts)
    with translated(conn.target):
        replies = wire.call_many_sync(client, calls)
    out: list[EnqueueResult] = []
    for part, reply in zip(parts, replies, strict=True):
        # NOSCRIPT (a restarted server) or an error: this part again as one call, which
        # loads a missing script and explains an error (an ACL denial) as every script
        # call does. Its jobs are stored once: enqueue.lua skips an id already stored.
        got = (
            conn.run_sync("enqueue", keys, *enqueue_args(part))
            if isinstance(reply, Exception)
            else reply
        )
        out += results(part, got)
    return out
