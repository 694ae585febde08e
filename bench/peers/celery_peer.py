"""Celery on its Redis transport: thread pool, late acks (``-A peers.celery_peer``)."""

from __future__ import annotations

import celery
from celery import Celery

from peers.common import Peer, bin_path, job_sync, redis_url

app = Celery("bench", broker=redis_url())
app.conf.update(
    task_acks_late=True,  # ack after the job, as Conveyor does (Celery's default: before)
    worker_prefetch_multiplier=4,  # the default, stated
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.incr")
def incr(t: float) -> None:
    """The benchmark job (Celery has no native async tasks)."""
    job_sync(t)


def worker(concurrency: int) -> list[str]:
    """One ``celery worker`` process with a thread pool."""
    return [
        bin_path("celery"),
        "-A",
        "peers.celery_peer",
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


def peer() -> Peer:
    """Celery's side of the benchmark."""
    return Peer(
        name="celery",
        version=f"celery {celery.__version__}",
        settings="`celery worker --pool threads --concurrency {c} --without-gossip "
        "--without-mingle --without-heartbeat`, acks_late=True, prefetch_multiplier=4, "
        "no result backend, sync task",
        worker=worker,
        enqueue=incr.delay,
    )
