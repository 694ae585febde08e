"""arq: ``arq peers.arq_peer.WorkerSettings``. Runs in the redis<6 virtualenv (arq's pin)."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from peers.common import Peer, bin_path, concurrency, job_async, redis_url

#: The producer's connection pool, made by `open_pool`.
_pools: list[ArqRedis] = []


async def incr(ctx: dict[str, Any], t: float) -> None:
    """The benchmark job."""
    await job_async(t)


class WorkerSettings:
    """arq's defaults (poll_delay 0.5 s, keep_result 1 h) except max_jobs."""

    functions = [incr]
    redis_settings = RedisSettings.from_dsn(redis_url())
    max_jobs = concurrency()


def worker(concurrency: int) -> list[str]:
    """One arq worker process (its concurrency comes from ``BENCH_CONCURRENCY``)."""
    return [bin_path("arq"), "peers.arq_peer.WorkerSettings"]


async def open_pool() -> None:
    """Connect the producer."""
    _pools.append(await create_pool(RedisSettings.from_dsn(redis_url())))


async def close_pool() -> None:
    """Close the producer's pool."""
    while _pools:
        await _pools.pop().aclose()


async def aenqueue(t: float) -> None:
    """``await pool.enqueue_job()``."""
    await _pools[0].enqueue_job("incr", t)


def peer() -> Peer:
    """arq's side of the benchmark."""
    return Peer(
        name="arq",
        version=f"arq {version('arq')}",
        settings="`arq WorkerSettings`, max_jobs={c}, poll_delay=0.5 s (default), async def task",
        worker=worker,
        aenqueue=aenqueue,
        open=open_pool,
        close=close_pool,
    )
