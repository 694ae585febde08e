"""Conveyor: the app the benchmark workers load (``--app peers.conveyor_peer:app``)."""

from __future__ import annotations

import sys
from importlib.metadata import version

from conveyor import Conveyor
from peers.common import Peer, job_async, redis_url

app = Conveyor(redis_url())


@app.task(name="bench.incr")
async def incr(t: float) -> None:
    """The benchmark job."""
    await job_async(t)


def worker(concurrency: int) -> list[str]:
    """One ``conveyor worker`` process at its defaults (``concurrency`` is not passed on:
    ``conveyor32_peer`` measures the tuned setting)."""
    del concurrency
    return [
        sys.executable,
        "-m",
        "conveyor",
        "worker",
        "--app",
        "peers.conveyor_peer:app",
        "--url",
        redis_url(),
        "--log-level",
        "warning",
    ]


async def aenqueue(t: float) -> None:
    """``await task.enqueue_async()``."""
    await incr.enqueue_async(t)


def peer() -> Peer:
    """Conveyor's side of the benchmark."""
    return Peer(
        name="conveyor",
        version=f"conveyor {version('conveyor')}",
        settings="`conveyor worker` (defaults), async def task (at-least-once: "
        "lease, ack after the job)",
        worker=worker,
        enqueue=incr.enqueue,
        aenqueue=aenqueue,
        bulk=lambda ts: incr.enqueue_many([(t,) for t in ts]),
        bulk_api="task.enqueue_many()",
    )
