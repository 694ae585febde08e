"""Run one PostgreSQL measurement for one system and print it as one JSON line.

    python -m peers.pg_driver PEER MODE [--jobs N] [--procs W] [--concurrency C] ...

The twin of ``driver.py`` (the Redis one) for ``postgres_bench.py``. PEER is a module name
in this package without ``_pg`` (``conveyor``, ``procrastinate``, ``saq``), or ``floor``
for plain psycopg. ``BENCH_PG_URL`` names a fresh, empty database: the driver creates the
job's side table and the system's schema there first (untimed). MODE is one of:

- ``enqueue``: ``--jobs`` single enqueue calls from one producer (the sync API if the peer
  has one, else one awaited call at a time);
- ``bulk``: the peer's bulk API in batches of ``--batch``;
- ``drain``: ``--jobs`` jobs queued first (untimed), then ``--procs`` worker processes
  started; seconds from their start until ``--jobs`` rows are in ``bench_done``;
- ``latency``: one idle worker; ``--jobs`` jobs at ``--rate`` per second; percentiles of
  the delay from just before each enqueue call to the job's start, in milliseconds;
- ``floor`` (PEER ``floor`` only): one committed INSERT per call, and multi-row INSERTs of
  ``--batch`` rows, with psycopg on one connection.

Worker processes get their own process group and are stopped (SIGTERM, then SIGKILL) on the
way out, also on a timeout or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import signal
import statistics
import sys
import time
from typing import Any

import psycopg

from peers.pg_common import CREATE_DONE, Peer, pg_url
from peers.procs import Workers
from peers.producing import enqueue_bulk, enqueue_single, fill

PAYLOAD = b'{"task":"bench.incr","args":[0.0],"id":"0123456789abcdef0123456789abcdef"}' * 2
#: Seconds between two looks at ``bench_done``.
STEP = 0.005


def load(name: str) -> Peer:
    """The `Peer` built by ``peers/<name>_pg.py``."""
    module = importlib.import_module(f"peers.{name}_pg")
    peer: Peer = module.peer()
    return peer


def sql(statement: str) -> list[tuple[Any, ...]]:
    """One statement on a short-lived autocommit connection."""
    with psycopg.connect(pg_url(), autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else []


# -- workers ------------------------------------------------------------------------------
def wait_done(
    conn: psycopg.Connection[Any], target: int, workers: Workers, timeout: float, base: int = 0
) -> float:
    """Block until ``bench_done`` has ``target`` rows; the moment it did (perf_counter).

    Polls the id sequence, a read of one row, until ``target`` inserts have begun, then
    counts the committed rows (a scan), so the polling costs the server next to nothing.
    ``base`` is the sequence's value when the table was last emptied."""
    deadline = time.perf_counter() + timeout
    while True:
        now = time.perf_counter()
        if started(conn) >= base + target and count(conn) >= target:
            return now
        if now > deadline:
            raise TimeoutError(f"only {count(conn)} of {target} jobs ran within {timeout:.0f} s")
        workers.check()
        time.sleep(STEP)


def started(conn: psycopg.Connection[Any]) -> int:
    """Inserts into ``bench_done`` begun so far (committed or not)."""
    row = conn.execute(
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM bench_done_id_seq"
    ).fetchone()
    return int(row[0]) if row else 0


def count(conn: psycopg.Connection[Any]) -> int:
    """Rows in ``bench_done``: jobs that have run."""
    row = conn.execute("SELECT count(*) FROM bench_done").fetchone()
    return int(row[0]) if row else 0


async def drain(
    peer: Peer, jobs: int, procs: int, concurrency: int, timeout: float
) -> dict[str, Any]:
    """Queue ``jobs``, then time ``procs`` workers from start until all have run."""
    await fill(peer, jobs)
    with psycopg.connect(pg_url(), autocommit=True) as conn:
        sql("CHECKPOINT")  # the fill's dirty pages are not flushed on the workers' time
        workers_start = time.perf_counter()
        workers = Workers(peer.worker(concurrency), procs)
        try:
            done = wait_done(conn, jobs, workers, timeout)
            await asyncio.sleep(0.2)  # a duplicate run would show as a count above ``jobs``
            ran = count(conn)
        finally:
            workers.stop()
    return {"seconds": done - workers_start, "ran": ran}


async def latency(peer: Peer, jobs: int, rate: float, concurrency: int) -> dict[str, Any]:
    """An idle worker; ``jobs`` jobs at a steady ``rate``; enqueue-to-start percentiles."""
    workers = Workers(peer.worker(concurrency), 1)
    try:
        with psycopg.connect(pg_url(), autocommit=True) as conn:
            await warm_up(peer, workers, conn)
            conn.execute("DELETE FROM bench_done")
            base = started(conn)
            start = time.time()
            for i in range(jobs):
                pause = start + i / rate - time.time()
                if pause > 0:
                    await asyncio.sleep(pause)
                if peer.enqueue is not None:
                    peer.enqueue(time.time())
                else:
                    assert peer.aenqueue is not None
                    await peer.aenqueue(time.time())
            wait_done(conn, jobs, workers, 60.0, base)
            rows = conn.execute(
                "SELECT waited FROM bench_done WHERE waited IS NOT NULL ORDER BY waited"
            ).fetchall()
    finally:
        workers.stop()
    delays = [float(r[0]) * 1000 for r in rows]
    q = statistics.quantiles(delays, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94], "p99": q[98], "max": delays[-1], "n": len(delays)}


async def warm_up(peer: Peer, workers: Workers, conn: psycopg.Connection[Any]) -> None:
    """Send a job every 0.1 s until the worker runs one, then leave it idle for 1 s."""
    deadline = time.monotonic() + 60
    while count(conn) == 0:
        if time.monotonic() > deadline:
            raise TimeoutError("the worker ran no job within 60 s of its start")
        workers.check()
        if peer.enqueue is not None:
            peer.enqueue(0.0)
        else:
            assert peer.aenqueue is not None
            await peer.aenqueue(0.0)
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)


# -- the floor ----------------------------------------------------------------------------
def floor(jobs: int, batch: int) -> dict[str, Any]:
    """Plain psycopg from one process: what one committed INSERT per job costs."""
    sql("CREATE TABLE floor (id bigserial PRIMARY KEY, payload bytea NOT NULL)")
    out: dict[str, Any] = {"version": f"psycopg {psycopg.__version__}"}
    with psycopg.connect(pg_url(), autocommit=True) as conn:
        insert = "INSERT INTO floor (payload) VALUES (%s)"
        conn.execute(insert, (PAYLOAD,))
        start = time.perf_counter()
        for _ in range(jobs):
            conn.execute(insert, (PAYLOAD,))
        out["insert"] = time.perf_counter() - start
        many = "INSERT INTO floor (payload) SELECT unnest(%s::bytea[])"
        start = time.perf_counter()
        for lo in range(0, jobs, batch):
            conn.execute(many, ([PAYLOAD] * min(batch, jobs - lo),))
        out["multirow"] = time.perf_counter() - start
    return out


# -- main ---------------------------------------------------------------------------------
async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare the fresh database, run the measurement, report it with the peer's settings."""
    os.environ["BENCH_CONCURRENCY"] = str(args.concurrency)
    if args.peer == "floor":
        return floor(args.jobs, args.batch)
    peer = load(args.peer)
    out: dict[str, Any] = {"version": peer.version, "settings": peer.settings}
    if args.mode == "describe":
        return {**out, "bulk_api": peer.bulk_api, "sync": peer.enqueue is not None}
    sql(CREATE_DONE)
    if peer.setup is not None:
        await peer.setup()
    if peer.open is not None:
        await peer.open()
    try:
        if args.mode == "enqueue":
            out.update(await enqueue_single(peer, args.jobs))
        elif args.mode == "bulk":
            out.update(await enqueue_bulk(peer, args.jobs, args.batch))
        elif args.mode == "drain":
            out.update(await drain(peer, args.jobs, args.procs, args.concurrency, args.timeout))
        else:
            out.update(await latency(peer, args.jobs, args.rate, args.concurrency))
    finally:
        if peer.close is not None:
            await peer.close()
    return out


def main() -> int:
    """Parse the arguments, run, print one JSON line (an ``error`` key if it failed)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("peer")
    parser.add_argument(
        "mode", choices=["describe", "enqueue", "bulk", "drain", "latency", "floor"]
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    # SIGTERM from postgres_bench.py (its timeout) unwinds, so the workers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    try:
        out = asyncio.run(run(args))
    except Exception as exc:  # noqa: BLE001 - reported to postgres_bench.py, which goes on
        out = {"error": f"{type(exc).__name__}: {exc}"[-2000:]}
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
