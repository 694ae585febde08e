"""Conveyor on one Redis next to a three-shard Redis Cluster, on the same machine.

    .venv/bin/python bench/redis_cluster_bench.py [--jobs 10000] [--workers 2] [--json FILE]

Started here, on 127.0.0.1, all with ``appendonly yes``: one redis-server (``redis://``),
and a Redis Cluster of three primaries and three replicas (``redis+cluster://...?shards=3``,
one shard per primary; the test suite's own cluster helper). For each store, measured:

1. enqueue: ``--jobs`` jobs from 100 coroutines at once, one ``enqueue`` call per job
   (Conveyor coalesces concurrent calls), spread over six queues;
2. bulk enqueue: the same in ``enqueue_many`` batches of 1,000;
3. drain: ``--workers`` ``conveyor worker --burst`` processes (``--concurrency 32``) on
   the queued jobs of step 2, from their start until every one has exited;
4. redis-server CPU per job (``INFO cpu``, user + sys) on every primary, during the
   enqueue of step 1 and during the drain: on a real cluster each primary has cores of its
   own, so the busiest primary's CPU per job is what sets the ceiling, not wall time here.

A 2-core machine runs every server, the producer and the workers on the same two cores: a
cluster cannot be faster here (it adds a hop per shard and three servers share the cores),
so read the wall-clock rates as the cost of the cluster client, and the per-primary CPU as
the scaling headroom. Not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis import Redis  # noqa: E402
from tests.integration.redis_cluster.cluster_server import RedisClusterServers  # noqa: E402
from tests.integration.redis_server import RedisServer  # noqa: E402

from conveyor import Conveyor  # noqa: E402

QUEUES = [f"bench-{i}" for i in range(6)]
APP = """
from conveyor import Conveyor

app = Conveyor()


@app.task(name="bench.noop")
async def noop(n: int) -> None:
    return None
"""


@dataclass
class Result:
    """One store's figures."""

    store: str
    enqueue_per_s: float = 0.0
    bulk_per_s: float = 0.0
    drain_per_s: float = 0.0
    #: Microseconds of redis-server CPU per job, by primary port, while enqueueing one by one.
    enqueue_cpu_us: dict[int, float] = field(default_factory=dict)
    #: The same while draining.
    drain_cpu_us: dict[int, float] = field(default_factory=dict)


def cpu(clients: dict[int, Redis]) -> dict[int, float]:
    """Seconds of CPU (user + sys) each server has used."""
    out = {}
    for port, c in clients.items():
        info = c.info("cpu")
        out[port] = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return out


def per_job(before: dict[int, float], after: dict[int, float], jobs: int) -> dict[int, float]:
    return {p: round((after[p] - before[p]) * 1e6 / jobs, 1) for p in before}


def app_on(url: str) -> Conveyor:
    app = Conveyor(url)

    @app.task(name="bench.noop")
    async def noop(n: int) -> None:
        return None

    return app


async def enqueue_concurrently(app: Conveyor, jobs: int) -> float:
    """Seconds to enqueue ``jobs`` jobs, one call each, from 100 coroutines."""
    task = app.get_task("bench.noop")
    bound = [task.options(queue=q) for q in QUEUES]
    next_n = iter(range(jobs))

    async def producer() -> None:
        for n in next_n:
            await bound[n % len(bound)].enqueue_async(n)

    await app.open()  # connected and scripts loaded before the clock starts
    begin = time.perf_counter()
    await asyncio.gather(*(producer() for _ in range(100)))
    return time.perf_counter() - begin


def enqueue_bulk(app: Conveyor, jobs: int) -> float:
    """Seconds to enqueue ``jobs`` jobs in batches of 1,000."""
    task = app.get_task("bench.noop")
    begin = time.perf_counter()
    for lo in range(0, jobs, 1000):
        calls = [
            task.options(queue=QUEUES[n % len(QUEUES)]).call(n)
            for n in range(lo, min(lo + 1000, jobs))
        ]
        app.enqueue_many(calls)
    return time.perf_counter() - begin


def drain(url: str, workers: int, work_dir: Path) -> float:
    """Seconds for ``workers`` burst workers to drain the store."""
    (work_dir / "bench_app.py").write_text(APP)
    env = {
        **os.environ,
        "CONVEYOR_URL": url,
        "PYTHONPATH": str(work_dir),
        "CONVEYOR_LOG_LEVEL": "warning",
    }
    cmd = [str(ROOT / ".venv/bin/conveyor"), "worker", "--app", "bench_app:app", "--burst"]
    cmd += ["--concurrency", "32"]
    begin = time.perf_counter()
    procs = [
        subprocess.Popen(cmd, env=env, cwd=work_dir, stdout=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    try:
        for proc in procs:
            proc.wait(timeout=600)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    return time.perf_counter() - begin


def measure(name: str, url: str, clients: dict[int, Redis], args: Any, work: Path) -> Result:
    result = Result(name)
    app = app_on(url)
    try:
        before = cpu(clients)
        seconds = asyncio.run(enqueue_concurrently(app, args.jobs))
        result.enqueue_per_s = round(args.jobs / seconds)
        result.enqueue_cpu_us = per_job(before, cpu(clients), args.jobs)
        # The first enqueue's jobs are drained too, so the drain starts from an empty store.
        seconds = drain(url, args.workers, work)
        result.bulk_per_s = round(args.jobs / enqueue_bulk(app, args.jobs))
        before = cpu(clients)
        seconds = drain(url, args.workers, work)
        result.drain_per_s = round(args.jobs / seconds)
        result.drain_cpu_us = per_job(before, cpu(clients), args.jobs)
    finally:
        app.close()
    return result


def report(results: list[Result]) -> str:
    lines = [
        f"{'store':<28}{'enqueue/s':>11}{'bulk/s':>10}{'drain/s':>10}  "
        "redis CPU µs/job (enqueue | drain), per primary",
    ]
    for r in results:
        enq = " ".join(f"{v:.0f}" for v in r.enqueue_cpu_us.values())
        dra = " ".join(f"{v:.0f}" for v in r.drain_cpu_us.values())
        lines.append(
            f"{r.store:<28}{r.enqueue_per_s:>11}{r.bulk_per_s:>10}{r.drain_per_s:>10}  "
            f"{enq} | {dra}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="conveyor-cluster-bench-") as tmp:
        work = Path(tmp)
        single = RedisServer(work / "single", "--maxmemory-policy", "noeviction")
        cluster = RedisClusterServers(work / "cluster")
        results = []
        try:
            single.start()
            cluster.start()
            results.append(
                measure(
                    "redis:// (one server)", single.url, {single.port: single.client()}, args, work
                )
            )
            primaries = {n.port: n.client() for n in cluster.primaries()}
            results.append(
                measure(
                    "redis+cluster:// (3 shards)",
                    f"{cluster.url}?shards=3",
                    primaries,
                    args,
                    work,
                )
            )
        finally:
            single.stop()
            cluster.stop()
    print(f"{args.jobs} jobs, {args.workers} worker processes, {os.cpu_count()} cores")
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    main()
