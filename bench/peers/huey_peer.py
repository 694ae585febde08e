"""Huey's ``RedisHuey`` (blocking dequeue) with a thread consumer."""

from __future__ import annotations

import huey as huey_pkg
from huey import RedisHuey

from peers.common import Peer, bin_path, job_sync, redis_url

huey = RedisHuey("bench", url=redis_url())


@huey.task()
def incr(t: float) -> None:
    """The benchmark job (Huey has no async tasks)."""
    job_sync(t)


def worker(concurrency: int) -> list[str]:
    """One ``huey_consumer`` process with ``concurrency`` threads."""
    return [
        bin_path("huey_consumer"),
        "peers.huey_peer.huey",
        "--workers",
        str(concurrency),
        "--worker-type",
        "thread",
        "--quiet",
    ]


def peer() -> Peer:
    """Huey's side of the benchmark."""
    return Peer(
        name="huey",
        version=f"huey {huey_pkg.__version__}",
        settings="`huey_consumer -k thread -w {c}`, RedisHuey (blocking=True, the "
        "default), sync task",
        worker=worker,
        enqueue=incr,
    )
