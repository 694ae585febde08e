"""Conveyor on Redis next to Celery, Dramatiq, RQ, arq, SAQ, taskiq and Huey, in one run.

    .venv/bin/python bench/redis_bench.py [--jobs 20000] [--repeat 3] [--peers celery,rq]

One ``redis-server`` (started here, 127.0.0.1, appendonly yes, flushed before every
measurement) and one job for every system: an ``INCR`` on a counter, which also tells when
all jobs have run. Measured, median of ``--repeat`` rounds:

1. enqueue rate: one producer, one call per job; async enqueue from ``--producers``
   coroutines at once (peers with an async API); bulk enqueue where there is an API;
2. drain rate: ``--jobs`` queued jobs, then one worker process, then two; from the
   workers' start until the counter reaches ``--jobs``; Conveyor twice, its workers at
   their defaults and at ``--concurrency`` (the setting every peer gets);
3. pickup latency: one idle worker, ``--latency-jobs`` jobs at ``--rate`` per second;
   p50 / p95 / p99 from just before the enqueue call to the job's start;

4. the server's side, which a busy machine does not distort: redis-server CPU per job
   (``INFO cpu``) while enqueueing one by one and while draining, and Redis memory per
   queued job (``used_memory`` before and after the single-call enqueue of ``--jobs``);
   and the producer's own CPU time per single-call enqueue;

and the floor: plain redis-py, one LPUSH (or INCR) per job from one process, and pipelined.

The peers are installed into virtualenvs under ``.bench/`` (gitignored): arq pins
``redis<6`` and taskiq-redis needs ``redis>=8``, so arq and SAQ get their own. Each
measurement is ``bench/peers/driver.py`` in the system's own interpreter, under a timeout;
a peer that fails to install or run is reported as such and the run goes on.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from redis_report import Result, machine, table

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WORK_DIR = ROOT / ".bench"

#: Virtualenv name -> what pip installs there -> the peers that run there.
VENVS: dict[str, tuple[list[str], list[str]]] = {
    "redis-peers-venv": (
        [
            "celery[redis]",
            "dramatiq[redis]",
            "rq",
            "taskiq",
            "taskiq-redis",
            "huey",
            "redis",
            "hiredis",
        ],
        ["celery", "dramatiq", "rq", "taskiq", "huey"],
    ),
    # arq pins redis<6 and saq[redis] redis<8, which taskiq-redis and kombu exclude.
    "redis-peers-venv-redis5": (
        ["arq", "saq[redis,hiredis]", "typing_extensions", "hiredis"],
        ["arq", "saq"],
    ),
}
PEERS = ["celery", "dramatiq", "rq", "arq", "saq", "taskiq", "huey"]
#: Conveyor's second column: its workers at the benchmark's ``--concurrency`` (the first
#: runs them at their defaults).
TUNED = "conveyor32"
#: Seconds each driver call may take, by mode, before it is stopped and reported.
TIMEOUTS = {
    "describe": 60,
    "enqueue": 180,
    "async": 180,
    "bulk": 120,
    "floor": 180,
    "drain": 330,
    "latency": 150,
}


# -- peers' virtualenvs -------------------------------------------------------------------
def install(venv: str, packages: list[str]) -> tuple[Path | None, str]:
    """The virtualenv's interpreter (creating it and installing once), or why not."""
    path = WORK_DIR / venv
    python = path / "bin" / "python"
    if not python.exists():
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(path)],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if made.returncode != 0:
            return None, f"could not create {path}: {made.stderr.strip()[-300:]}"
    stamp = path / "bench-installed.json"
    if stamp.exists() and json.loads(stamp.read_text()) == packages:
        return python, ""
    print(f"installing {' '.join(packages)} into {path} ...", file=sys.stderr, flush=True)
    try:
        pip = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *packages],
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
    except subprocess.TimeoutExpired:
        return None, "pip install took over 900 s"
    if pip.returncode != 0:
        return None, f"pip install failed: {pip.stderr.strip()[-300:]}"
    stamp.write_text(json.dumps(packages))
    return python, ""


def interpreters(peers: list[str]) -> tuple[dict[str, Path], dict[str, str]]:
    """Which interpreter runs each system, and why a peer has none."""
    me = Path(sys.executable)
    pythons: dict[str, Path] = {"conveyor": me, TUNED: me, "floor": me}
    failed: dict[str, str] = {}
    for venv, (packages, members) in VENVS.items():
        wanted = [p for p in members if p in peers]
        if not wanted:
            continue
        python, why = install(venv, packages)
        for p in wanted:
            if python is None:
                failed[p] = f"not installed: {why}"
            else:
                pythons[p] = python
    return pythons, failed


# -- redis-server -------------------------------------------------------------------------
class Server:
    """A redis-server of our own: 127.0.0.1, a free port, appendonly yes."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
                "--logfile",
                str(directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise SystemExit(
                        f"redis-server did not answer; see {directory}/redis.log"
                    ) from None
                time.sleep(0.05)
        self.version = str(client.info("server")["redis_version"])
        client.close()

    def stop(self) -> None:
        """Stop the server we started (only that one)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- running one measurement --------------------------------------------------------------
#: ``PYTHONPATH`` entries put first for Conveyor's processes (``--conveyor-ref``).
CONVEYOR_PATH = {"path": ""}


def drive(python: Path, system: str, mode: str, url: str, *args: str) -> dict[str, Any]:
    """Run ``peers/driver.py`` for one system and mode under a timeout; its JSON report."""
    timeout = TIMEOUTS[mode]
    first = CONVEYOR_PATH["path"] if system in ("conveyor", TUNED) else ""
    proc = subprocess.Popen(
        [str(python), "-m", "peers.driver", system, mode, *args],
        cwd=BENCH_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "BENCH_REDIS_URL": url,
            "PYTHONPATH": os.pathsep.join(p for p in (first, str(BENCH_DIR)) if p),
        },
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the driver stops its workers on the way out
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        return {"error": f"timed out after {timeout} s"}
    lines = out.strip().splitlines()
    if not lines:
        return {"error": f"exited with {proc.returncode}: {err.strip()[-500:]}"}
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def one_round(
    n: int,
    args: argparse.Namespace,
    systems: dict[str, dict[str, Any]],
    pythons: dict[str, Path],
    url: str,
) -> list[Result]:
    """Every measurement once. The systems' order turns each round, so drift in the
    machine's speed (a noisy neighbour) does not always land on the same one."""
    names = list(systems)
    order = names[n % len(names) :] + names[: n % len(names)]
    # The tuned Conveyor differs from the default one only in its workers.
    producers = [s for s in order if s != TUNED]
    jobs, conc = str(args.jobs), str(args.concurrency)
    plan: list[tuple[str, str, list[str], list[str]]] = [
        ("enqueue", "enqueue", ["--jobs", jobs], producers),
        (
            "async",
            "async",
            ["--jobs", jobs, "--producers", str(args.producers)],
            [s for s in producers if systems[s]["async"]],
        ),
        (
            "bulk",
            "bulk",
            ["--jobs", jobs, "--batch", str(args.batch)],
            [s for s in producers if systems[s]["bulk_api"]],
        ),
        ("drain1", "drain", ["--jobs", jobs, "--procs", "1", "--concurrency", conc], order),
        ("drain2", "drain", ["--jobs", jobs, "--procs", "2", "--concurrency", conc], order),
        (
            "latency",
            "latency",
            ["--jobs", str(args.latency_jobs), "--rate", str(args.rate), "--concurrency", conc],
            order,
        ),
    ]
    results: list[Result] = []
    floor = drive(
        pythons["floor"], "floor", "floor", url, "--jobs", jobs, "--batch", str(args.batch)
    )
    results += [
        Result(f"floor_{key}", "floor", floor)
        for key in (
            "lpush",
            "incr",
            "pipelined",
            "lpush_server_us",
            "lpush_memory_bytes",
            "lpush_client_us",
        )
    ]
    for measure, mode, extra, who in plan:
        if measure not in args.measures:
            continue
        for system in who:
            began = time.monotonic()
            report = drive(pythons[system], system, mode, url, *extra)
            results.append(Result(measure, system, report))
            print(
                f"  round {n + 1} {measure:8} {system:9} {time.monotonic() - began:6.1f}s "
                f"{report.get('error', '')[:160]}",
                file=sys.stderr,
                flush=True,
            )
    return results


# -- main ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Install the peers, start redis-server, run the rounds, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per rate measurement")
    parser.add_argument("--batch", type=int, default=1_000, help="bulk enqueue batch size")
    parser.add_argument(
        "--producers", type=int, default=100, help="coroutines in the async enqueue measurement"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=32,
        help="jobs in flight per worker process (threads, coroutines)",
    )
    parser.add_argument("--latency-jobs", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=100.0, help="latency jobs per second")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is shown")
    parser.add_argument(
        "--peers", default=",".join(PEERS), help="comma-separated peers to measure (default: all)"
    )
    parser.add_argument("--no-peers", action="store_true", help="Conveyor and the floor only")
    parser.add_argument(
        "--measures",
        default="enqueue,async,bulk,drain1,drain2,latency",
        help="comma-separated subset of the measurements",
    )
    parser.add_argument("--json", type=Path, help="also write every raw result here")
    parser.add_argument(
        "--conveyor-ref", help="measure Conveyor at this git ref (default: the working tree)"
    )
    args = parser.parse_args(argv)
    args.measures = set(args.measures.split(","))
    peers = [] if args.no_peers else [p for p in args.peers.split(",") if p]
    unknown = set(peers) - set(PEERS)
    if unknown:
        parser.error(f"unknown peers: {', '.join(sorted(unknown))}; known: {', '.join(PEERS)}")

    WORK_DIR.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="redis-run-", dir=WORK_DIR))
    started = time.monotonic()
    from postgres_bench import conveyor_source  # it imports this module: not at the top

    CONVEYOR_PATH["path"], what = conveyor_source(args.conveyor_ref, tmp)
    pythons, failed = interpreters(peers)
    server = Server(tmp)
    try:
        systems: dict[str, dict[str, Any]] = {}
        for name in ["conveyor", TUNED, *peers]:
            if name in failed:
                continue
            info = drive(pythons[name], name, "describe", server.url)
            if "error" in info:
                failed[name] = f"cannot load: {info['error']}"
            else:
                systems[name] = info
        if "conveyor" not in systems:
            raise SystemExit(f"Conveyor itself failed: {failed.get('conveyor')}")
        print("\n".join(machine(server.version)), flush=True)
        print(f"conveyor: {what}", flush=True)
        results: list[Result] = []
        for n in range(args.repeat):
            results += one_round(n, args, systems, pythons, server.url)
            print(
                f"round {n + 1}/{args.repeat} done ({time.monotonic() - started:.0f} s "
                "since start)",
                file=sys.stderr,
                flush=True,
            )
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json is not None:
        args.json.write_text(json.dumps([r.as_json() for r in results], indent=1))
    print(
        f"median of {args.repeat} round(s); {args.jobs:,} jobs per rate, "
        f"{args.latency_jobs:,} at {args.rate:g}/s for latency; "
        f"{time.monotonic() - started:.0f} s in all"
    )
    print(table(results, systems, failed, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
