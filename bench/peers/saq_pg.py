"""SAQ's Postgres queue: ``saq peers.saq_pg.settings``. Runs in ``.bench/pg-peers-venv``."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from saq import Queue

from peers.pg_common import Peer, bin_path, concurrency, job_async, pg_url

#: psycopg_pool defaults as SAQ sets them: min 4, max 20 connections.
queue = Queue.from_url(pg_url())


async def incr(ctx: dict[str, Any], *, t: float) -> None:
    """The benchmark job."""
    await job_async(t)


settings = {"queue": queue, "functions": [incr], "concurrency": concurrency()}


def worker(concurrency: int) -> list[str]:
    """One SAQ worker process (its concurrency comes from ``BENCH_CONCURRENCY``); SAQ
    listens for NOTIFY unless given a poll interval."""
    return [bin_path("saq"), "peers.saq_pg.settings", "--workers", "1"]


async def aenqueue(t: float) -> None:
    """``await queue.enqueue()``."""
    await queue.enqueue("incr", t=t)


async def connect() -> None:
    """Connect the producer; the first connect creates SAQ's tables."""
    await queue.connect()


async def disconnect() -> None:
    """Close the producer's connections."""
    await queue.disconnect()


def peer() -> Peer:
    """SAQ's side of the benchmark."""
    return Peer(
        name="saq",
        version=f"saq {version('saq')}",
        settings="`saq settings --workers 1`, concurrency={c}, LISTEN/NOTIFY (no "
        "poll_interval), pool min 4 max 20 (defaults), async def task",
        worker=worker,
        aenqueue=aenqueue,
        setup=connect,
        open=connect,
        close=disconnect,
    )
