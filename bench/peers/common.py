"""The benchmark job and the interface every peer module fills in.

Only redis-py and the standard library: this module is imported by every peer, in every
virtualenv.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import redis
import redis.asyncio

#: The job's counter, and the list of enqueue-to-start delays (latency run only).
COUNTER = "bench:counter"
LATENCY = "bench:latency"


def redis_url() -> str:
    """The server under test (set by ``redis_bench.py``)."""
    return os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def concurrency() -> int:
    """Jobs in flight per worker process, for peers configured in code (arq, SAQ)."""
    return int(os.environ.get("BENCH_CONCURRENCY", "32"))


def bin_path(name: str) -> str:
    """A console script installed next to this interpreter (``celery``, ``rq``, ...)."""
    return str(Path(sys.executable).with_name(name))


_async_clients: dict[asyncio.AbstractEventLoop, redis.asyncio.Redis] = {}


@functools.cache
def sync_client() -> redis.Redis:
    """One thread-safe client per process."""
    return redis.Redis.from_url(redis_url())


def async_client() -> redis.asyncio.Redis:
    """One asyncio client per event loop."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = _async_clients[loop] = redis.asyncio.Redis.from_url(redis_url())
    return client


def job_sync(t: float) -> None:
    """The benchmark job: one INCR. With ``t`` (the enqueue time, wall clock) it also
    records how long the job waited, in the same round trip, before the INCR that
    tells the driver it is done."""
    start = time.time()
    client = sync_client()
    if t:
        client.pipeline(transaction=False).rpush(LATENCY, start - t).incr(COUNTER).execute()
    else:
        client.incr(COUNTER)


async def job_async(t: float) -> None:
    """`job_sync` for ``async def`` tasks."""
    start = time.time()
    client = async_client()
    if t:
        pipe = client.pipeline(transaction=False)
        pipe.rpush(LATENCY, start - t).incr(COUNTER)
        await pipe.execute()
    else:
        await client.incr(COUNTER)


@dataclass(slots=True)
class Peer:
    """What the driver needs to know about one system.

    Give ``enqueue`` for a sync client API, ``aenqueue`` for an async one, or both; the
    single-call measurement uses the sync API when there is one. ``bulk``/``abulk`` take a
    list of enqueue times (one job each); ``bulk_api`` names the call.
    """

    name: str
    version: str
    #: The worker settings, as shown in the table (``{c}`` is the concurrency).
    settings: str
    worker: Callable[[int], list[str]]
    enqueue: Callable[[float], object] | None = None
    aenqueue: Callable[[float], Awaitable[object]] | None = None
    bulk: Callable[[list[float]], object] | None = None
    abulk: Callable[[list[float]], Awaitable[object]] | None = None
    bulk_api: str = ""
    #: Run in the producer before enqueueing (connect, create consumer groups, ...).
    open: Callable[[], Awaitable[None]] | None = None
    close: Callable[[], Awaitable[None]] | None = None
