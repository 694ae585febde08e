"""Huey's side of `sqlite_bench.py`; runs in ``.bench/huey-venv``, where Huey is installed.

    huey_peer.py enqueue --jobs N        one producer, one task call per job
    huey_peer.py drain --jobs N --workers W
                                         N queued no-ops, one `huey_consumer` process with W
                                         threads, timed from start until the queue is empty

Prints one JSON line: ``{"seconds": ..., "version": ...}``. The database file is ``HUEY_DB``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import huey as huey_pkg
from huey import SqliteHuey

huey = SqliteHuey("bench", filename=os.environ.get("HUEY_DB", "huey-bench.db"))


@huey.task()
def noop(i: int) -> None:
    """Do nothing."""


def enqueue(jobs: int) -> float:
    """Time ``jobs`` task calls, each one enqueue."""
    noop(-1)
    start = time.perf_counter()
    for i in range(jobs):
        noop(i)
    return time.perf_counter() - start


def drain(jobs: int, workers: int) -> float:
    """Queue ``jobs`` no-ops, then time a consumer process until the queue is empty."""
    for i in range(jobs):
        noop(i)
    # The console script's first line names the interpreter it was installed with, which
    # is gone once a virtualenv is copied or moved: run its module with this one instead.
    consumer = [sys.executable, "-m", "huey.bin.huey_consumer"]
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*consumer, "huey_peer.huey", "-w", str(workers), "-k", "thread", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = start + 600
    try:
        while huey.pending_count() > 0:
            if time.perf_counter() > deadline:
                raise SystemExit("huey_consumer did not drain the queue in 600 s")
            if proc.poll() is not None:
                raise SystemExit(f"huey_consumer exited early: {proc.stderr.read()!r}")
            time.sleep(0.01)
        return time.perf_counter() - start
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    """Run one measurement and print it as JSON."""
    # Huey names tasks after their module: enqueue through `huey_peer`, the module the
    # consumer imports, not through this script's `__main__` copy of it.
    import huey_peer

    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["enqueue", "drain"])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    if args.mode == "enqueue":
        seconds = huey_peer.enqueue(args.jobs)
    else:
        seconds = huey_peer.drain(args.jobs, args.workers)
    print(json.dumps({"seconds": seconds, "version": huey_pkg.__version__}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
