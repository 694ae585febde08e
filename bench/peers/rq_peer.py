"""RQ with ``SimpleWorker`` (jobs run in the worker process, no fork per job)."""

from __future__ import annotations

import functools
from importlib.metadata import version

from redis import Redis
from rq import Queue

from peers.common import Peer, bin_path, job_sync, redis_url


def incr(t: float) -> None:
    """The benchmark job (RQ would run a coroutine in a new event loop per job)."""
    job_sync(t)


@functools.cache
def queue() -> Queue:
    """The default queue, on its own connection."""
    return Queue("default", connection=Redis.from_url(redis_url()))


def worker(concurrency: int) -> list[str]:
    """One ``rq worker`` process (``concurrency`` does not apply: one job at a time)."""
    return [
        bin_path("rq"),
        "worker",
        "--url",
        redis_url(),
        "--worker-class",
        "rq.worker.SimpleWorker",
        "--quiet",
        "default",
    ]


def bulk(ts: list[float]) -> None:
    """``Queue.enqueue_many``: one pipeline per batch."""
    q = queue()
    q.enqueue_many([Queue.prepare_data(incr, (t,)) for t in ts])


def peer() -> Peer:
    """RQ's side of the benchmark."""
    return Peer(
        name="rq",
        version=f"rq {version('rq')}",
        settings="`rq worker --worker-class rq.worker.SimpleWorker`: one job at a time "
        "per process, no fork per job; sync function",
        worker=worker,
        enqueue=lambda t: queue().enqueue(incr, t),
        bulk=bulk,
        bulk_api="Queue.enqueue_many()",
    )
