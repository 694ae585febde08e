"""Conveyor on PostgreSQL: the app the benchmark workers load (``peers.conveyor_pg:app``)."""

from __future__ import annotations

import sys
from importlib.metadata import version

from conveyor import Conveyor
from conveyor.backends import create_backend
from peers.pg_common import Peer, job_async, pg_url

app = Conveyor(pg_url())


@app.task(name="bench.incr")
async def incr(t: float) -> None:
    """The benchmark job."""
    await job_async(t)


def worker(concurrency: int) -> list[str]:
    """One ``conveyor worker`` process."""
    return [
        sys.executable,
        "-m",
        "conveyor",
        "worker",
        "--app",
        "peers.conveyor_pg:app",
        "--url",
        pg_url(),
        "--concurrency",
        str(concurrency),
        "--log-level",
        "warning",
    ]


async def setup() -> None:
    """Create Conveyor's schema (what `conveyor migrate` does)."""
    backend = create_backend(pg_url())
    await backend.migrate()
    await backend.close()


def peer() -> Peer:
    """Conveyor's side of the benchmark."""
    return Peer(
        name="conveyor",
        version=f"conveyor {version('conveyor')}",
        settings="`conveyor worker --concurrency {c}`, async def task, LISTEN/NOTIFY on, "
        "pool_size 10 (default); at-least-once: lease, ack after the job",
        worker=worker,
        enqueue=incr.enqueue,
        bulk=lambda ts: incr.enqueue_many([(t,) for t in ts]),
        bulk_api="task.enqueue_many()",
        setup=setup,
    )
