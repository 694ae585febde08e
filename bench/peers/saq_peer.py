"""SAQ's Redis queue: ``saq peers.saq_peer.settings``. Runs in the redis<8 virtualenv."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from saq import Queue

from peers.common import Peer, bin_path, concurrency, job_async, redis_url

queue = Queue.from_url(redis_url())


async def incr(ctx: dict[str, Any], *, t: float) -> None:
    """The benchmark job."""
    await job_async(t)


settings = {"queue": queue, "functions": [incr], "concurrency": concurrency()}


def worker(concurrency: int) -> list[str]:
    """One SAQ worker process (its concurrency comes from ``BENCH_CONCURRENCY``)."""
    return [bin_path("saq"), "peers.saq_peer.settings", "--workers", "1"]


async def aenqueue(t: float) -> None:
    """``await queue.enqueue()``."""
    await queue.enqueue("incr", t=t)


async def connect() -> None:
    """Connect the producer."""
    await queue.connect()


async def disconnect() -> None:
    """Close the producer's connections."""
    await queue.disconnect()


def peer() -> Peer:
    """SAQ's side of the benchmark."""
    return Peer(
        name="saq",
        version=f"saq {version('saq')}",
        settings="`saq settings --workers 1`, concurrency={c}, async def task",
        worker=worker,
        aenqueue=aenqueue,
        open=connect,
        close=disconnect,
    )
