"""Dramatiq's RedisBroker with an ``async def`` actor (``dramatiq peers.dramatiq_peer``)."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware.asyncio import AsyncIO

from peers.common import Peer, bin_path, job_async, redis_url

broker = RedisBroker(url=redis_url())
if not any(isinstance(m, AsyncIO) for m in broker.middleware):
    broker.add_middleware(AsyncIO())
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="bench_incr", max_retries=0)
async def incr(t: float) -> None:
    """The benchmark job."""
    await job_async(t)


def worker(concurrency: int) -> list[str]:
    """One Dramatiq worker process with ``concurrency`` threads."""
    return [
        bin_path("dramatiq"),
        "peers.dramatiq_peer",
        "--processes",
        "1",
        "--threads",
        str(concurrency),
    ]


def peer() -> Peer:
    """Dramatiq's side of the benchmark."""
    return Peer(
        name="dramatiq",
        version=f"dramatiq {dramatiq.__version__}",
        settings="`dramatiq --processes 1 --threads {c}`, async def actor (AsyncIO "
        "middleware), default middleware, ack after the job",
        worker=worker,
        enqueue=incr.send,
    )
