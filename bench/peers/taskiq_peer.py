"""taskiq with taskiq-redis's ``RedisStreamBroker`` (the one with acknowledgements)."""

from __future__ import annotations

from importlib.metadata import version

from taskiq_redis import RedisStreamBroker

from peers.common import Peer, bin_path, job_async, redis_url

broker = RedisStreamBroker(url=redis_url())


@broker.task(task_name="bench.incr")
async def incr(t: float) -> None:
    """The benchmark job."""
    await job_async(t)


def worker(concurrency: int) -> list[str]:
    """One taskiq worker process (``--workers 1``; taskiq adds a supervising parent)."""
    return [
        bin_path("taskiq"),
        "worker",
        "peers.taskiq_peer:broker",
        "--workers",
        "1",
        "--max-async-tasks",
        str(concurrency),
        "--log-level",
        "WARNING",
    ]


async def aenqueue(t: float) -> None:
    """``await task.kiq()``."""
    await incr.kiq(t)


def peer() -> Peer:
    """taskiq's side of the benchmark."""
    return Peer(
        name="taskiq",
        version=f"taskiq {version('taskiq')}, taskiq-redis {version('taskiq-redis')}",
        settings="`taskiq worker --workers 1 --max-async-tasks {c}`, RedisStreamBroker, "
        "ack when_saved (default), no result backend, async def task",
        worker=worker,
        aenqueue=aenqueue,
        open=broker.startup,  # creates the consumer group before jobs are queued
        close=broker.shutdown,
    )
