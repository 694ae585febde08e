"""Where one Conveyor job's time and memory go on Redis, robust to a busy machine.

    .venv/bin/python bench/redis_profile.py [--jobs 5000] [--concurrency 0] [--cprofile]
    .venv/bin/python bench/redis_profile.py --producer [--bulk-jobs 20000] [--pairs 5]

Starts its own ``redis-server`` (as ``redis_bench.py`` does) and measures Conveyor alone,
in CPU time and bytes rather than wall-clock rates, so other load on the machine barely
moves the figures:

1. enqueue: ``--jobs`` single sync ``task.enqueue()`` calls; the producer's CPU time per
   call (``--cprofile``: its top functions), redis-server CPU per job (``INFO cpu``), and
   ``used_memory`` per queued job, split by key (``MEMORY USAGE`` of one job's hash, and of
   each index divided by the jobs it holds);
2. drain: one ``conveyor worker`` process (``--concurrency``; 0 for its default) runs them;
   redis-server CPU per job, and the worker process's own CPU per job;

and for both, each script's calls per job and server microseconds per call, from
``SLOWLOG`` with a threshold of 0 (every command is logged with its execution time).

``--producer`` measures the producer side only (no worker), as issue 13's enqueue
targets do: ``--bulk-jobs`` jobs by ``task.enqueue_many()`` in batches of 1,000 (as the
benchmark's bulk rate does: jobs per second, the producer's CPU per job, redis-server CPU
per job and ``enqueue.lua``'s server time per call from ``INFO commandstats``), then
``--pairs`` alternated pairs of 2,000 single ``task.enqueue()`` calls and 2,000 plain
redis-py ``LPUSH`` calls from the same process (medians of calls per second and CPU per
call; their ratio is the target's).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psutil
import redis
from redis_bench import WORK_DIR, Server

BENCH_DIR = Path(__file__).resolve().parent


def counters(client: redis.Redis) -> tuple[float, int]:
    """redis-server CPU seconds (user + system) and ``used_memory``."""
    info = client.info()
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"]), int(info["used_memory"])


def start_slowlog(client: redis.Redis, jobs: int) -> None:
    """Log every command from now on (threshold 0), enough entries for a whole phase."""
    client.config_set("slowlog-log-slower-than", 0)
    client.config_set("slowlog-max-len", max(1024, jobs * 24))
    client.slowlog_reset()


def per_script(client: redis.Redis, jobs: int) -> list[str]:
    """SLOWLOG grouped by command (scripts by name): calls per job, µs per call and per
    job. Read with the log still on: the reading commands come last and are left out."""
    from conveyor.backends.redis.scripts import NAMES, script

    names = {script(n).sha.encode(): n for n in NAMES}
    entries = client.execute_command("SLOWLOG", "GET", -1)
    client.config_set("slowlog-log-slower-than", 10_000)
    calls: dict[str, list[int]] = defaultdict(list)
    for entry in entries:
        args = entry[3]
        command = args[0].decode().upper()
        if command in ("SLOWLOG", "CONFIG", "INFO", "MEMORY"):
            continue
        if command == "EVALSHA":
            command = "script " + names.get(args[1], args[1].decode()[:8])
        calls[command].append(int(entry[2]))
    lines = [f"  {'command':24} {'calls/job':>10} {'us/call':>9} {'us/job':>8}"]
    for command, times in sorted(calls.items(), key=lambda kv: -sum(kv[1])):
        lines.append(
            f"  {command:24} {len(times) / jobs:10.3f} {sum(times) / len(times):9.1f} "
            f"{sum(times) / jobs:8.1f}"
        )
    return lines


def memory_split(client: redis.Redis, prefix: str, jobs: int) -> list[str]:
    """``MEMORY USAGE`` per key kind, per queued job."""
    kinds: dict[str, list[int]] = defaultdict(list)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        kind = key.decode().removeprefix(prefix).split(":")[0]
        kinds[kind].append(int(client.memory_usage(key, samples=0) or 0))
    lines = [f"  {'key kind':16} {'keys':>7} {'bytes/job':>10}"]
    for kind, sizes in sorted(kinds.items(), key=lambda kv: -sum(kv[1])):
        lines.append(f"  {kind:16} {len(sizes):7} {sum(sizes) / jobs:10.1f}")
    one = next(client.scan_iter(match=f"{prefix}job:*", count=1000), None)
    if one is not None:
        fields = client.hgetall(one)
        raw = sum(len(k) + len(v) for k, v in fields.items())
        lines.append(
            f"  one job hash: {len(fields)} fields, {raw} bytes of names and values, "
            f"MEMORY USAGE {client.memory_usage(one, samples=0)} (key {len(one)} bytes)"
        )
    return lines


def enqueue(url: str, jobs: int, profile: bool) -> tuple[float, list[str]]:
    """``jobs`` single sync enqueues in this process; CPU µs per call, and a profile."""
    os.environ["BENCH_REDIS_URL"] = url
    sys.path.insert(0, str(BENCH_DIR))
    from peers.conveyor_peer import incr

    incr.enqueue(0.0)  # connect, load the scripts
    profiler = cProfile.Profile() if profile else None
    cpu = time.process_time()
    if profiler is not None:
        profiler.enable()
    for _ in range(jobs):
        incr.enqueue(0.0)
    if profiler is not None:
        profiler.disable()
    cpu = time.process_time() - cpu
    lines: list[str] = []
    if profiler is not None:
        stats = pstats.Stats(profiler)
        rows: list[tuple[float, str]] = []
        for func, (_, calls, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
            rows.append((own, f"{Path(func[0]).name}:{func[1]} {func[2]} ({calls // jobs}/job)"))
        rows.sort(reverse=True)
        lines = [f"  {own / jobs * 1e6:7.1f} us/job own time  {name}" for own, name in rows[:15]]
    return cpu / jobs * 1e6, lines


def drain(url: str, client: redis.Redis, jobs: int, concurrency: int) -> tuple[float, float]:
    """One ``conveyor worker`` until the jobs have run: seconds, and its CPU µs per job
    in the steady state (after the first tenth of the jobs)."""
    command = [
        sys.executable,
        "-m",
        "conveyor",
        "worker",
        "--app",
        "peers.conveyor_peer:app",
        "--url",
        url,
        "--log-level",
        "warning",
    ]
    if concurrency:
        command += ["--concurrency", str(concurrency)]
    first = os.environ.get("PYTHONPATH", "")
    env = {
        **os.environ,
        "BENCH_REDIS_URL": url,
        "PYTHONPATH": os.pathsep.join(p for p in (first, str(BENCH_DIR)) if p),
    }
    proc = subprocess.Popen(command, cwd=BENCH_DIR, env=env)
    watched = psutil.Process(proc.pid)
    started = time.perf_counter()
    # Steady state: from the first tenth of the jobs done (start-up and imports behind)
    # to the last, so the worker's start does not weigh on a short run.
    mark: tuple[int, float] | None = None
    try:
        deadline = time.monotonic() + 300
        while (done := int(client.get("bench:counter") or 0)) < jobs:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the worker did not run every job within 300 s")
            if mark is None and done >= jobs // 10:
                times = watched.cpu_times()
                mark = (done, times.user + times.system)
            time.sleep(0.002)
        seconds = time.perf_counter() - started
        times = watched.cpu_times()
        cpu = times.user + times.system
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if mark is None or mark[0] >= jobs:
        return seconds, float("nan")
    return seconds, (cpu - mark[1]) / (jobs - mark[0]) * 1e6


def producer(url: str, client: redis.Redis, jobs: int, pairs: int) -> list[str]:
    """Bulk and single enqueue against an LPUSH loop, all from this process."""
    os.environ["BENCH_REDIS_URL"] = url
    sys.path.insert(0, str(BENCH_DIR))
    from peers.conveyor_peer import incr

    incr.enqueue(0.0)  # connect, load the scripts
    rows: list[tuple[float, float, float, float]] = []
    for _ in range(3):
        client.flushall()
        client.config_resetstat()
        server0, _ = counters(client)
        wall, cpu = time.perf_counter(), time.process_time()
        for lo in range(0, jobs, 1000):
            incr.enqueue_many([(0.0,) for _ in range(min(1000, jobs - lo))])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        server1, _ = counters(client)
        script = client.info("commandstats").get("cmdstat_evalsha", {})
        rows.append(
            (
                jobs / wall,
                cpu / jobs * 1e6,
                (server1 - server0) / jobs * 1e6,
                float(script.get("usec_per_call", "nan")),
            )
        )
    bulk = [statistics.median(column) for column in zip(*rows, strict=True)]
    out = [
        f"bulk: {jobs:,} jobs by task.enqueue_many() in batches of 1,000 (median of 3)",
        f"  {bulk[0]:,.0f} jobs/s; producer CPU {bulk[1]:.2f} us per job; redis-server CPU "
        f"{bulk[2]:.2f} us per job; enqueue.lua {bulk[3]:,.0f} us per script call",
    ]
    payload = b"x" * 60
    singles: list[tuple[float, float, float, float]] = []
    for _ in range(pairs):
        client.flushall()
        incr.enqueue(0.0)
        measured = []
        for call in (lambda: incr.enqueue(0.0), lambda: client.lpush("bench:lpush", payload)):
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(2000):
                call()
            measured += [2000 / (time.perf_counter() - wall), (time.process_time() - cpu) / 2000]
        singles.append((measured[0], measured[1] * 1e6, measured[2], measured[3] * 1e6))
    med = [statistics.median(column) for column in zip(*singles, strict=True)]
    ratio = statistics.median(s[0] / s[2] for s in singles)
    out += [
        f"single: {pairs} alternated pairs of 2,000 task.enqueue() and 2,000 LPUSH (medians)",
        f"  task.enqueue() {med[0]:,.0f} calls/s, producer CPU {med[1]:.1f} us per call",
        f"  LPUSH          {med[2]:,.0f} calls/s, producer CPU {med[3]:.1f} us per call",
        f"  ratio {ratio:.2f}x the LPUSH floor (calls per second, median of the pairs)",
    ]
    client.flushall()
    return out


def main(argv: list[str] | None = None) -> int:
    """Run both phases on a fresh server and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5_000)
    parser.add_argument(
        "--concurrency", type=int, default=0, help="the worker's; 0 leaves its default"
    )
    parser.add_argument("--cprofile", action="store_true", help="profile the producer")
    parser.add_argument(
        "--producer", action="store_true", help="measure enqueueing only (bulk, single)"
    )
    parser.add_argument("--bulk-jobs", type=int, default=20_000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument(
        "--conveyor-ref", help="profile Conveyor at this git ref (default: the working tree)"
    )
    args = parser.parse_args(argv)
    WORK_DIR.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="redis-profile-", dir=WORK_DIR))
    from postgres_bench import conveyor_source  # imports redis_bench: after it

    path, what = conveyor_source(args.conveyor_ref, tmp)
    if path:  # before anything imports conveyor; the worker gets it on PYTHONPATH
        sys.path.insert(0, path)
        os.environ["PYTHONPATH"] = path
    print(f"conveyor: {what}", flush=True)
    server = Server(tmp)
    out: list[str] = []
    try:
        client = redis.Redis.from_url(server.url)
        if args.producer:
            print("\n".join(producer(server.url, client, args.bulk_jobs, args.pairs)))
            return 0
        # Two passes: the first reads CPU and memory, the second logs every command (the
        # log itself costs CPU and memory, so it never runs during the first).
        for logged in (False, True):
            client.flushall()
            if logged:
                start_slowlog(client, args.jobs)
            cpu0, mem0 = counters(client)
            client_us, profile = enqueue(server.url, args.jobs, args.cprofile and not logged)
            cpu1, mem1 = counters(client)
            if logged:
                out.append(
                    "enqueue, per command (SLOWLOG; a script's time includes the commands it "
                    "calls, which are listed too)"
                )
                out += per_script(client, args.jobs)
            else:
                out.append(f"enqueue: {args.jobs:,} single sync task.enqueue() calls")
                out.append(f"  producer CPU {client_us:.1f} us per call")
                out.append(f"  redis-server CPU {(cpu1 - cpu0) / args.jobs * 1e6:.1f} us per job")
                out.append(f"  used_memory {(mem1 - mem0) / args.jobs:.0f} bytes per queued job")
                out += memory_split(client, "{conveyor}:", args.jobs)
                if profile:
                    out.append("producer profile (cProfile, own time per job, top 15):")
                    out += profile
            if logged:
                start_slowlog(client, args.jobs)
            cpu0, _ = counters(client)
            seconds, worker_us = drain(server.url, client, args.jobs + 1, args.concurrency)
            cpu1, _ = counters(client)
            if logged:
                out.append("drain, per command (SLOWLOG):")
                out += per_script(client, args.jobs + 1)
            else:
                out.append(
                    f"drain: one worker (concurrency {args.concurrency or 'default'}), "
                    f"{args.jobs + 1:,} jobs in {seconds:.2f} s (wall clock: noisy on a busy "
                    "machine)"
                )
                out.append(
                    f"  worker process CPU {worker_us:.1f} us per job (steady state: after "
                    "the first tenth of the jobs)"
                )
                out.append(
                    f"  redis-server CPU {(cpu1 - cpu0) / (args.jobs + 1) * 1e6:.1f} us per job"
                )
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
