"""Run one measurement for one peer and print it as one JSON line.

    python -m peers.driver PEER MODE [--jobs N] [--procs W] [--concurrency C] ...

PEER is a module name in this package without ``_peer`` (``conveyor``, ``celery``, ...), or
``floor`` for plain redis-py. MODE is one of:

- ``enqueue``: ``--jobs`` single enqueue calls from one producer (the sync API if the peer
  has one, else one awaited call at a time);
- ``async``: ``--jobs`` async enqueues from ``--producers`` concurrent coroutines;
- ``bulk``: the peer's bulk API in batches of ``--batch``;
- ``drain``: ``--jobs`` jobs queued first (untimed), then ``--procs`` worker processes
  started; seconds from their start until the counter reaches ``--jobs``;
- ``latency``: one idle worker; ``--jobs`` jobs at ``--rate`` per second; percentiles of
  the delay from just before each enqueue call to the job's start, in milliseconds;
- ``floor`` (PEER ``floor`` only): one LPUSH per job, one INCR per job, pipelined LPUSH.

``enqueue`` and ``drain`` also report the server's side, robust to a busy machine:
``server_us``, redis-server CPU (``INFO cpu``, user + system) per job over the timed part,
and for ``enqueue`` ``memory_bytes``, the growth of ``used_memory`` per queued job, and
``client_us``, the producer's own CPU time per call.

The server is flushed first. Worker processes get their own process group and are
stopped (SIGTERM, then SIGKILL) on the way out, also on a timeout or SIGTERM.
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

from peers.common import COUNTER, LATENCY, Peer, sync_client
from peers.procs import Workers
from peers.producing import enqueue_bulk, enqueue_concurrent, enqueue_single, fill

PAYLOAD = b'{"task":"bench.incr","args":[0.0],"id":"0123456789abcdef0123456789abcdef"}' * 2


def load(name: str) -> Peer:
    """The `Peer` built by ``peers/<name>_peer.py``."""
    module = importlib.import_module(f"peers.{name}_peer")
    peer: Peer = module.peer()
    return peer


# -- the server's side ---------------------------------------------------------------------
def server_counters() -> dict[str, float]:
    """redis-server's CPU seconds (user + system, all threads) and ``used_memory``."""
    info = sync_client().info()
    return {
        "cpu": float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
        "memory": float(info["used_memory"]),
    }


def per_job(before: dict[str, float], after: dict[str, float], jobs: int) -> dict[str, float]:
    """Server CPU (microseconds) and memory growth (bytes) per job between two readings."""
    return {
        "server_us": (after["cpu"] - before["cpu"]) / jobs * 1e6,
        "memory_bytes": (after["memory"] - before["memory"]) / jobs,
    }


# -- workers ------------------------------------------------------------------------------
def wait_counter(target: int, workers: Workers, timeout: float, step: float = 0.002) -> float:
    """Block until the counter reaches ``target``; the moment it did (perf_counter)."""
    client = sync_client()
    deadline = time.perf_counter() + timeout
    while True:
        now = time.perf_counter()
        if int(client.get(COUNTER) or 0) >= target:
            return now
        if now > deadline:
            done = int(client.get(COUNTER) or 0)
            raise TimeoutError(f"only {done} of {target} jobs ran within {timeout:.0f} s")
        workers.check()
        time.sleep(step)


async def drain(
    peer: Peer, jobs: int, procs: int, concurrency: int, timeout: float
) -> dict[str, Any]:
    """Queue ``jobs``, then time ``procs`` workers from start until all have run."""
    await fill(peer, jobs)
    before = server_counters()
    workers_start = time.perf_counter()
    workers = Workers(peer.worker(concurrency), procs)
    try:
        done = wait_counter(jobs, workers, timeout)
        cpu = per_job(before, server_counters(), jobs)["server_us"]
        await asyncio.sleep(0.2)  # a duplicate run would show as a count above ``jobs``
        ran = int(sync_client().get(COUNTER) or 0)
    finally:
        workers.stop()
    return {"seconds": done - workers_start, "ran": ran, "server_us": cpu}


async def latency(peer: Peer, jobs: int, rate: float, concurrency: int) -> dict[str, Any]:
    """An idle worker; ``jobs`` jobs at a steady ``rate``; enqueue-to-start percentiles."""
    client = sync_client()
    workers = Workers(peer.worker(concurrency), 1)
    try:
        await warm_up(peer, workers)
        client.delete(COUNTER, LATENCY)
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
        wait_counter(jobs, workers, 60.0)
    finally:
        workers.stop()
    delays = sorted(float(x) * 1000 for x in client.lrange(LATENCY, 0, -1))
    q = statistics.quantiles(delays, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94], "p99": q[98], "max": delays[-1], "n": len(delays)}


async def warm_up(peer: Peer, workers: Workers) -> None:
    """Send a job every 0.1 s until the worker runs one, then leave it idle for 1 s."""
    client = sync_client()
    deadline = time.monotonic() + 60
    while int(client.get(COUNTER) or 0) == 0:
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
    """Plain redis-py from one process: what one round trip per job costs."""
    client = sync_client()
    out: dict[str, Any] = {"version": importlib.import_module("redis").__version__}
    client.lpush("bench:floor", PAYLOAD)
    before = server_counters()
    cpu, start = time.process_time(), time.perf_counter()
    for _ in range(jobs):
        client.lpush("bench:floor", PAYLOAD)
    out["lpush"] = time.perf_counter() - start
    out["lpush_client_us"] = (time.process_time() - cpu) / jobs * 1e6
    out.update({f"lpush_{k}": v for k, v in per_job(before, server_counters(), jobs).items()})
    start = time.perf_counter()
    for _ in range(jobs):
        client.incr(COUNTER)
    out["incr"] = time.perf_counter() - start
    start = time.perf_counter()
    for lo in range(0, jobs, batch):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(batch, jobs - lo)):
            pipe.lpush("bench:floor", PAYLOAD)
        pipe.execute()
    out["pipelined"] = time.perf_counter() - start
    return out


# -- main ---------------------------------------------------------------------------------
async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Flush the server, run the measurement, report it with the peer's description."""
    os.environ["BENCH_CONCURRENCY"] = str(args.concurrency)
    sync_client().flushall()
    if args.peer == "floor":
        return floor(args.jobs, args.batch)
    peer = load(args.peer)
    out: dict[str, Any] = {"version": peer.version, "settings": peer.settings}
    if args.mode == "describe":
        return {
            **out,
            "bulk_api": peer.bulk_api,
            "sync": peer.enqueue is not None,
            "async": peer.aenqueue is not None,
        }
    if peer.open is not None:
        await peer.open()
    try:
        if args.mode == "enqueue":
            got = await enqueue_single(peer, args.jobs, server_counters)
            before, after = got.pop("probe_before"), got.pop("probe_after")
            out.update(got)
            out.update(per_job(before, after, args.jobs))
        elif args.mode == "async":
            out.update(await enqueue_concurrent(peer, args.jobs, args.producers))
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
        "mode", choices=["describe", "enqueue", "async", "bulk", "drain", "latency", "floor"]
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--producers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    # SIGTERM from redis_bench.py (its timeout) unwinds, so the workers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    try:
        out = asyncio.run(run(args))
    except Exception as exc:  # noqa: BLE001 - reported to redis_bench.py, which goes on
        out = {"error": f"{type(exc).__name__}: {exc}"[-2000:]}
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
