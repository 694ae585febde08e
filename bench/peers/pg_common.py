"""The PostgreSQL benchmark's job, and the interface every ``*_pg`` peer module fills in.

Only psycopg and the standard library: this module is imported by every PostgreSQL peer, in
Conveyor's virtualenv and in ``.bench/pg-peers-venv``.

The job is the same for every system: one ``INSERT INTO bench_done (waited) VALUES (...)``,
committed on its own, in the database under test. ``waited`` is the delay from just before
the enqueue call to the job's start (latency run) or NULL. The driver watches the id
sequence (a cheap read) and then counts the rows to know when every job has run, so the
job's work is one small committed write, like an application's job that records its outcome.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg_pool import AsyncConnectionPool

CREATE_DONE = "CREATE TABLE IF NOT EXISTS bench_done (id bigserial, waited float8)"
INSERT_DONE = "INSERT INTO bench_done (waited) VALUES (%s)"


def pg_url() -> str:
    """The database under test (a fresh one per measurement, set by ``postgres_bench.py``)."""
    return os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/bench")


def concurrency() -> int:
    """Jobs in flight per worker process, for peers configured in code (SAQ)."""
    return int(os.environ.get("BENCH_CONCURRENCY", "32"))


def bin_path(name: str) -> str:
    """A console script installed next to this interpreter (``saq``, ``procrastinate``)."""
    return str(Path(sys.executable).with_name(name))


_pools: dict[asyncio.AbstractEventLoop, AsyncConnectionPool[psycopg.AsyncConnection]] = {}
_opening: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}


async def _pool() -> AsyncConnectionPool[psycopg.AsyncConnection]:
    """The job's own connection pool: one per event loop, as large as the concurrency, so
    the job never waits for a connection and the queue's own pool is left alone."""
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is not None:
        return pool
    async with _opening.setdefault(loop, asyncio.Lock()):
        pool = _pools.get(loop)
        if pool is None:
            pool = AsyncConnectionPool(
                pg_url(),
                min_size=1,
                max_size=concurrency(),
                kwargs={"autocommit": True},
                open=False,
                name="bench-job",
            )
            await pool.open()
            _pools[loop] = pool
    return pool


async def job_async(t: float) -> None:
    """The benchmark job: one committed INSERT; with ``t`` (the enqueue time, wall clock)
    the row records how long the job waited."""
    waited = time.time() - t if t else None
    pool = await _pool()
    async with pool.connection() as conn:
        await conn.execute(INSERT_DONE, (waited,))


@dataclass(slots=True)
class Peer:
    """What the driver needs to know about one system (see ``peers/common.py`` for the
    Redis twin of this interface).

    ``enqueue``/``aenqueue`` take the enqueue time (0.0 outside the latency run);
    ``bulk``/``abulk`` a list of them. ``setup`` runs once on a fresh database before
    anything else (create the system's schema); ``open``/``close`` wrap the producer.
    """

    name: str
    version: str
    #: The worker settings, as shown in the table (``{c}`` is the concurrency).
    settings: str
    worker: Callable[[int], list[str]]
    enqueue: Callable[[float], object] | None = None
    aenqueue: Callable[[float], Awaitable[object]] | None = None
    bulk: Callable[[list[float]], object] | None = None
    abulk: Callable[[list[float]], Awaitable[object]] | None = None
    bulk_api: str = ""
    setup: Callable[[], Awaitable[None]] | None = None
    open: Callable[[], Awaitable[None]] | None = None
    close: Callable[[], Awaitable[None]] | None = None
