"""Throughput of Conveyor on SQLite, next to Huey's SQLite storage measured in the same run.

    .venv/bin/python bench/sqlite_bench.py [--jobs 20000] [--concurrency 32] [--no-peers]

Three numbers, each in jobs per second:

1. enqueue, one ``task.enqueue()`` call per job (one transaction each), from one producer;
2. ``enqueue_many`` in batches of 1,000;
3. drain: ``--jobs`` no-op jobs already queued, one ``conveyor worker --burst`` process,
   timed from process start to exit (so it includes interpreter start-up).

Huey (``huey.SqliteHuey``) is installed into ``.bench/huey-venv`` and measured the same way
by ``bench/huey_peer.py``; if it cannot be installed the output says so. This file is also
the app the drain worker loads (``--app sqlite_bench:app``); importing it does no work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from redis_report import byte_compiled

from conveyor import Conveyor, State
from conveyor.backends import create_backend

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WORK_DIR = ROOT / ".bench"
HUEY_VENV = WORK_DIR / "huey-venv"
NOOP = "bench.noop"


def build_app(url: str | None = None) -> Conveyor:
    """The benchmark app: one async no-op task."""
    conveyor = Conveyor(url)

    @conveyor.task(name=NOOP)
    async def noop(i: int) -> None:
        """Do nothing: the benchmark measures the queue, not the work."""

    return conveyor


app = build_app()


# -- measurements -------------------------------------------------------------------------
@dataclass(slots=True)
class Row:
    """One line of the results table."""

    name: str
    jobs: int
    conveyor_s: float
    huey_s: float | None = None
    note: str = ""

    @staticmethod
    def rate(jobs: int, seconds: float | None) -> float | None:
        """Jobs per second, or ``None`` when not measured."""
        return None if seconds is None else jobs / seconds


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn`` takes on a monotonic clock."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def enqueue_single(url: str, jobs: int) -> float:
    """One producer, one ``enqueue()`` call (one transaction) per job."""
    bench = build_app(url)
    task = bench.get_task(NOOP)
    task.enqueue(-1)  # create the file and schema outside the timing

    def run() -> None:
        for i in range(jobs):
            task.enqueue(i)

    try:
        return timed(run)
    finally:
        bench.close()


def enqueue_bulk(url: str, jobs: int, batch: int) -> float:
    """``enqueue_many`` in batches of ``batch`` jobs."""
    bench = build_app(url)
    task = bench.get_task(NOOP)
    task.enqueue(-1)

    def run() -> None:
        for lo in range(0, jobs, batch):
            task.enqueue_many([(i,) for i in range(lo, min(lo + batch, jobs))])

    try:
        return timed(run)
    finally:
        bench.close()


def drain(url: str, jobs: int, concurrency: int) -> float:
    """Queue ``jobs`` no-ops (untimed), then time one ``conveyor worker --burst`` process."""
    bench = build_app(url)
    task = bench.get_task(NOOP)
    for lo in range(0, jobs, 1000):
        task.enqueue_many([(i,) for i in range(lo, min(lo + 1000, jobs))])
    env = {
        **os.environ,
        "CONVEYOR_URL": url,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    command = [
        sys.executable,
        "-m",
        "conveyor",
        "worker",
        "--app",
        "sqlite_bench:app",
        "--burst",
        "--concurrency",
        str(concurrency),
        "--log-level",
        "warning",
    ]
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"the worker exited with {proc.returncode}:\n{proc.stderr[-3000:]}")
    bench.close()
    succeeded = asyncio.run(_count(url, State.SUCCEEDED))
    if succeeded != jobs:
        raise SystemExit(f"only {succeeded} of {jobs} jobs succeeded after the worker exited")
    return seconds


async def _count(url: str, state: State) -> int:
    backend = create_backend(url)
    await backend.open()
    try:
        return sum(row.counts.get(state, 0) for row in await backend.admin.stats())
    finally:
        await backend.close()


# -- Huey ---------------------------------------------------------------------------------
def huey_python() -> tuple[Path | None, str]:
    """The Huey venv's interpreter (installing Huey once), or ``None`` and why not."""
    python = HUEY_VENV / "bin" / "python"
    if not python.exists():
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(HUEY_VENV)],
            capture_output=True,
            text=True,
            check=False,
        )
        if made.returncode != 0:
            return None, f"could not create {HUEY_VENV}: {made.stderr.strip()[-300:]}"
    check = subprocess.run([str(python), "-c", "import huey"], capture_output=True, check=False)
    if check.returncode != 0:
        pip = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "huey"],
            capture_output=True,
            text=True,
            check=False,
        )
        if pip.returncode != 0:
            return None, f"`pip install huey` failed: {pip.stderr.strip()[-300:]}"
    return python, ""


def huey_run(python: Path, mode: str, db: Path, jobs: int, workers: int) -> dict[str, float]:
    """Run one ``bench/huey_peer.py`` measurement and return its JSON report."""
    proc = subprocess.run(
        [
            str(python),
            str(BENCH_DIR / "huey_peer.py"),
            mode,
            "--jobs",
            str(jobs),
            "--workers",
            str(workers),
        ],
        env={**os.environ, "HUEY_DB": str(db), "PYTHONPATH": str(BENCH_DIR)},
        capture_output=True,
        text=True,
        check=False,
        cwd=BENCH_DIR,
    )
    if proc.returncode != 0:
        raise SystemExit(f"huey_peer.py {mode} failed:\n{proc.stderr[-3000:]}")
    report: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


# -- output -------------------------------------------------------------------------------
def machine() -> list[str]:
    """What the numbers were measured on."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [
        f"machine : {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}",
        f"python  : {platform.python_version()} ({sys.executable})",
        f"sqlite  : {sqlite3.sqlite_version} (library used by Python)",
    ]


def table(rows: list[Row], huey_note: str) -> str:
    """The results as a fixed-width table."""
    head = f"{'benchmark':44} {'jobs':>7} {'conveyor/s':>11} {'huey/s':>9} {'ratio':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        c = Row.rate(r.jobs, r.conveyor_s)
        h = Row.rate(r.jobs, r.huey_s)
        ratio = f"{c / h:5.2f}x" if c is not None and h is not None else "   n/a"
        hs = f"{h:9.0f}" if h is not None else f"{'n/a':>9}"
        lines.append(f"{r.name:44} {r.jobs:7d} {c:11.0f} {hs} {ratio:>6}")
        if r.note:
            lines.append(f"{'':44}   {r.note}")
    lines.append("ratio = Conveyor jobs/s divided by Huey jobs/s (above 1: Conveyor is faster)")
    if huey_note:
        lines.append(f"huey    : {huey_note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run every measurement ``--repeat`` times and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per measurement")
    parser.add_argument("--batch", type=int, default=1_000, help="enqueue_many batch size")
    parser.add_argument("--concurrency", type=int, default=32, help="drain worker concurrency")
    parser.add_argument("--huey-workers", type=int, default=4, help="Huey consumer threads")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is shown")
    parser.add_argument("--no-peers", action="store_true", help="skip Huey")
    args = parser.parse_args(argv)
    byte_compiled(ROOT / "src" / "conveyor", BENCH_DIR)
    WORK_DIR.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="run-", dir=WORK_DIR))
    print("\n".join(machine()), flush=True)
    python: Path | None = None
    huey_note = "skipped (--no-peers)"
    if not args.no_peers:
        python, why = huey_python()
        huey_note = f"not measured: {why}" if python is None else ""
    times: dict[str, list[float]] = {}
    try:
        for n in range(args.repeat):
            for key, seconds in one_round(tmp, n, args, python).items():
                times.setdefault(key, []).append(seconds)
            print(f"round {n + 1}/{args.repeat} done", file=sys.stderr, flush=True)
        if python is not None:
            huey_note = f"huey {huey_version(python)} (SqliteHuey: WAL, synchronous=FULL)"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def med(key: str) -> float | None:
        return statistics.median(times[key]) if key in times else None

    rows = [
        Row(
            "enqueue: one enqueue() call per job",
            args.jobs,
            med("c_single") or 0.0,
            med("h_single"),
        ),
        Row(
            f"enqueue_many: batches of {args.batch:,}",
            args.jobs,
            med("c_bulk") or 0.0,
            note="Huey has no bulk enqueue API",
        ),
        Row(
            f"drain: 1 worker process, concurrency {args.concurrency}",
            args.jobs,
            med("c_drain") or 0.0,
            med("h_drain"),
            note=f"Conveyor: start to exit of `conveyor worker --burst`; Huey: "
            f"huey_consumer, {args.huey_workers} threads, start to empty queue",
        ),
    ]
    print(f"median of {args.repeat} round(s), each on fresh database files")
    print(table(rows, huey_note))
    return 0


def one_round(tmp: Path, n: int, args: argparse.Namespace, python: Path | None) -> dict[str, float]:
    """Every measurement once, on fresh files. Conveyor and Huey alternate inside the
    round, so drift in the machine's speed (a noisy neighbour) lands on both."""

    def url(name: str) -> str:
        return f"sqlite:///{tmp / f'{name}-{n}.db'}"

    out = {"c_single": enqueue_single(url("single"), args.jobs)}
    if python is not None:
        out["h_single"] = huey_run(python, "enqueue", tmp / f"huey-single-{n}.db", args.jobs, 1)[
            "seconds"
        ]
    out["c_bulk"] = enqueue_bulk(url("bulk"), args.jobs, args.batch)
    out["c_drain"] = drain(url("drain"), args.jobs, args.concurrency)
    if python is not None:
        out["h_drain"] = huey_run(
            python, "drain", tmp / f"huey-drain-{n}.db", args.jobs, args.huey_workers
        )["seconds"]
    return out


def huey_version(python: Path) -> str:
    """The installed Huey version."""
    out = subprocess.run(
        [str(python), "-c", "import huey; print(huey.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "?"


if __name__ == "__main__":
    raise SystemExit(main())
