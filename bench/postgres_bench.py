"""Conveyor on PostgreSQL next to procrastinate and SAQ's Postgres queue, in one run.

    .venv/bin/python bench/postgres_bench.py [--jobs 20000] [--repeat 3] [--peers saq]

One PostgreSQL server (started here with ``scripts/postgres.sh`` in a temporary directory,
or ``--url`` of one you run) and a fresh database for every measurement of every system.
Every job does the same work: one committed ``INSERT INTO bench_done (waited)`` in that
database, and the driver counts those rows to know when all jobs have run. Measured, median
of ``--repeat`` rounds:

1. enqueue rate: one producer, one call per job; bulk enqueue where there is an API;
2. drain rate: ``--jobs`` queued jobs, then one worker process, then two; from the
   workers' start until every job has run;
3. pickup latency: one idle worker, ``--latency-jobs`` jobs at ``--rate`` per second;
   p50 / p95 / p99 from just before the enqueue call to the job's start;

and the floor: plain psycopg, one committed INSERT per call, and multi-row INSERTs.

The peers are installed into ``.bench/pg-peers-venv`` (gitignored). Each measurement is
``bench/peers/pg_driver.py`` in the system's own interpreter, under a timeout; a peer that
fails to install or run is reported as such and the run goes on. ``--conveyor-ref HEAD``
measures a committed Conveyor (a ``git archive`` of ``src/`` put first on ``PYTHONPATH``)
instead of the working tree.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from redis_bench import install
from redis_report import Result, byte_compiled, medians

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WORK_DIR = ROOT / ".bench"
VENV = "pg-peers-venv"
PACKAGES = ["procrastinate", "psycopg[binary,pool]", "saq[postgres]"]
PEERS = ["procrastinate", "saq"]
#: Seconds each driver call may take, by mode, before it is stopped and reported.
TIMEOUTS = {"describe": 60, "enqueue": 180, "bulk": 120, "floor": 180, "drain": 330, "latency": 150}
MEASURES = ["enqueue", "bulk", "drain1", "drain2", "latency"]
#: (key, label, unit, floor): "rate" is jobs/s (higher is better), "ms" lower is better.
ROWS = [
    ("enqueue", "enqueue: one call per job", "rate", "floor_insert"),
    ("bulk", "enqueue: bulk, batches of {batch:,}", "rate", "floor_multirow"),
    ("drain1", "drain: 1 worker process", "rate", ""),
    ("drain2", "drain: 2 worker processes", "rate", ""),
    ("latency.p50", "pickup latency p50 (ms)", "ms", ""),
    ("latency.p95", "pickup latency p95 (ms)", "ms", ""),
    ("latency.p99", "pickup latency p99 (ms)", "ms", ""),
]


# -- the server ---------------------------------------------------------------------------
class Server:
    """The PostgreSQL under test: ``--url``, or one started by ``scripts/postgres.sh``."""

    def __init__(self, url: str | None) -> None:
        self.dir: Path | None = None
        if url is None:
            self.dir = Path(tempfile.mkdtemp(prefix="conveyor-pgbench-"))
            out = subprocess.run(
                ["bash", str(ROOT / "scripts" / "postgres.sh"), "start", str(self.dir)],
                capture_output=True,
                text=True,
                check=False,
                timeout=900,
            )
            if out.returncode != 0:
                raise SystemExit(f"scripts/postgres.sh start failed:\n{out.stderr[-2000:]}")
            url = out.stdout.strip().splitlines()[-1].split("=", 1)[1]
        self.base = url.split("?", 1)[0].rsplit("/", 1)[0]  # the server, without a database
        self.admin = psycopg.connect(f"{self.base}/postgres", autocommit=True)

    def show(self, *names: str) -> dict[str, str]:
        """Server settings, by name."""
        return {
            n: str(self.admin.execute(sql.SQL("SHOW {}").format(sql.Identifier(n))).fetchone()[0])
            for n in names
        }  # type: ignore[index]

    @contextlib.contextmanager
    def database(self, name: str) -> Any:
        """A fresh, empty database for one measurement; dropped afterwards."""
        ident = sql.Identifier(name)
        self.admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        self.admin.execute(sql.SQL("CREATE DATABASE {}").format(ident))
        try:
            yield f"{self.base}/{name}"
        finally:
            self.admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))

    def stop(self) -> None:
        """Stop the server if we started it (only that one)."""
        self.admin.close()
        if self.dir is not None:
            subprocess.run(
                ["bash", str(ROOT / "scripts" / "postgres.sh"), "stop", str(self.dir)],
                capture_output=True,
                check=False,
                timeout=120,
            )
            shutil.rmtree(self.dir, ignore_errors=True)


# -- Conveyor at a git ref ----------------------------------------------------------------
def conveyor_source(ref: str | None, tmp: Path) -> tuple[str, str]:
    """``PYTHONPATH`` entries for Conveyor's processes, and how to name what is measured;
    the source and the peer modules are byte-compiled first (`byte_compiled`)."""
    if ref is None:
        byte_compiled(ROOT / "src" / "conveyor", BENCH_DIR)
        return "", "working tree"
    sha = subprocess.run(
        ["git", "rev-parse", "--short=10", ref],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", sha, "src"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
    byte_compiled(tmp / "src" / "conveyor", BENCH_DIR)
    return str(tmp / "src"), f"git {ref} = {sha}"


# -- running one measurement --------------------------------------------------------------
def drive(python: Path, system: str, mode: str, url: str, path: str, *args: str) -> dict[str, Any]:
    """Run ``peers/pg_driver.py`` for one system and mode under a timeout; its report."""
    timeout = TIMEOUTS[mode]
    proc = subprocess.Popen(
        [str(python), "-m", "peers.pg_driver", system, mode, *args],
        cwd=BENCH_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "BENCH_PG_URL": url,
            "PYTHONPATH": os.pathsep.join(p for p in (path, str(BENCH_DIR)) if p),
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
    server: Server,
) -> list[Result]:
    """Every measurement once, each on a fresh database. The systems' order turns each
    round, so drift in the machine's speed does not always land on the same one."""
    names = list(systems)
    order = names[n % len(names) :] + names[: n % len(names)]
    jobs, conc = str(args.jobs), str(args.concurrency)
    plan: list[tuple[str, str, list[str], list[str]]] = [
        ("enqueue", "enqueue", ["--jobs", jobs], order),
        (
            "bulk",
            "bulk",
            ["--jobs", jobs, "--batch", str(args.batch)],
            [s for s in order if systems[s]["bulk_api"]],
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
    with server.database(f"bench_{n}_floor") as url:
        floor = drive(
            Path(sys.executable),
            "floor",
            "floor",
            url,
            "",
            "--jobs",
            jobs,
            "--batch",
            str(args.batch),
        )
    results = [Result(f"floor_{key}", "floor", floor) for key in ("insert", "multirow")]
    for measure, mode, extra, who in plan:
        if measure not in args.measures:
            continue
        for system in who:
            began = time.monotonic()
            info = systems[system]
            with server.database(f"bench_{n}_{measure}_{system}") as url:
                report = drive(info["python"], system, mode, url, info["path"], *extra)
            results.append(Result(measure, system, report))
            print(
                f"  round {n + 1} {measure:8} {system:13} {time.monotonic() - began:6.1f}s "
                f"{report.get('error', '')[:160]}",
                file=sys.stderr,
                flush=True,
            )
    return results


# -- output -------------------------------------------------------------------------------
def machine(server: Server) -> list[str]:
    """What the numbers were measured on."""
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    s = server.show(
        "server_version", "fsync", "synchronous_commit", "shared_buffers", "max_connections"
    )
    return [
        f"machine : {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"load average {load} at the start",
        f"python  : {platform.python_version()} ({sys.executable})",
        f"postgres: {s['server_version']}, 127.0.0.1 (TCP), fsync={s['fsync']}, "
        f"synchronous_commit={s['synchronous_commit']}, shared_buffers={s['shared_buffers']}, "
        f"max_connections={s['max_connections']}; a fresh database per measurement",
    ]


def table(
    results: list[Result],
    systems: dict[str, dict[str, Any]],
    failed: dict[str, str],
    args: argparse.Namespace,
) -> str:
    """One row per measure, one column per system, then the best peer, Conveyor's ratio
    to it (above 1: Conveyor is better) and the psycopg floor."""
    med, errors = medians(results, args)
    names = list(systems)
    peers = [n for n in names if n != "conveyor"]
    head = (
        f"{'measure':34}"
        + "".join(f"{n:>14}" for n in names)
        + f"{'best peer':>20} {'ratio':>6} {'floor':>7}"
    )
    lines = [head, "-" * len(head)]
    for key, label, unit, floor_key in ROWS:
        if key.split(".")[0] not in args.measures:
            continue
        cells = []
        for n in names:
            v = med.get((key, n))
            cells.append(
                f"{cell(v, unit):>14}"
                if v is not None
                else f"{'fail' if (key, n) in errors else '-':>14}"
            )
        scored = [(med[(key, p)], p) for p in peers if (key, p) in med]
        best = (min(scored) if unit == "ms" else max(scored)) if scored else None
        mine = med.get((key, "conveyor"))
        ratio = "   n/a"
        if best and mine:
            ratio = f"{(best[0] / mine if unit == 'ms' else mine / best[0]):5.2f}x"
        best_s = f"{cell(best[0], unit)} {best[1]}" if best else "n/a"
        floor = med.get((floor_key, "floor"))
        floor_s = f"{floor:7.0f}" if floor is not None else ""
        lines.append(
            f"{label.format(**vars(args)):34}"
            + "".join(cells)
            + f"{best_s:>20} {ratio:>6} {floor_s:>7}"
        )
    lines.append(
        "ratio: Conveyor / best peer for rates, best peer / Conveyor for latency "
        "(above 1: Conveyor is better)"
    )
    lines.append(
        "floor  : psycopg on one connection: one committed INSERT per call; "
        f"multi-row INSERT of {args.batch:,} rows per commit"
    )
    lines.append("settings (per worker process):")
    for info in systems.values():
        settings = str(info["settings"]).replace("{c}", str(args.concurrency))
        api = "sync" if info["sync"] else "async only (awaited one by one)"
        lines.append(
            f"  {info['version']}: {settings}; enqueue API: {api}; "
            f"bulk: {info['bulk_api'] or 'none'}"
        )
    for name, why in failed.items():
        lines.append(f"  {name}: {why}")
    for (key, name), why in sorted(errors.items()):
        lines.append(f"  {name} failed {key} in every round: {why[:300]}")
    for r in results:
        if r.measure.startswith("drain") and r.report.get("ran", args.jobs) != args.jobs:
            lines.append(
                f"  {r.system} {r.measure}: {r.report['ran']} job runs counted for "
                f"{args.jobs} jobs (0.2 s after the last one)"
            )
    return "\n".join(lines)


def cell(v: float, unit: str) -> str:
    """A number as the table shows it."""
    return f"{v:.1f}" if unit == "ms" else f"{v:.0f}"


# -- main ---------------------------------------------------------------------------------
def describe(
    args: argparse.Namespace, server: Server, tmp: Path
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Install the peers and ask every system's driver what it is."""
    peers = [] if args.no_peers else [p for p in args.peers.split(",") if p]
    failed: dict[str, str] = {}
    python, why = install(VENV, PACKAGES) if peers else (None, "")
    path, what = conveyor_source(args.conveyor_ref, tmp)
    candidates = {"conveyor": (Path(sys.executable), path)}
    for p in peers:
        if python is None:
            failed[p] = f"not installed: {why}"
        else:
            candidates[p] = (python, "")
    systems: dict[str, dict[str, Any]] = {}
    for name, (py, pypath) in candidates.items():
        with server.database("bench_describe") as url:
            info = drive(py, name, "describe", url, pypath)
        if "error" in info:
            failed[name] = f"cannot load: {info['error']}"
        else:
            systems[name] = {**info, "python": py, "path": pypath}
    if "conveyor" not in systems:
        raise SystemExit(f"Conveyor itself failed: {failed.get('conveyor')}")
    systems["conveyor"]["version"] += f" ({what})"
    return systems, failed


def main(argv: list[str] | None = None) -> int:
    """Install the peers, start PostgreSQL, run the rounds, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per rate measurement")
    parser.add_argument("--batch", type=int, default=1_000, help="bulk enqueue batch size")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="jobs in flight per worker process"
    )
    parser.add_argument("--latency-jobs", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=100.0, help="latency jobs per second")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is shown")
    parser.add_argument(
        "--peers", default=",".join(PEERS), help="comma-separated peers to measure (default: all)"
    )
    parser.add_argument("--no-peers", action="store_true", help="Conveyor and the floor only")
    parser.add_argument(
        "--measures", default=",".join(MEASURES), help="comma-separated subset of the measurements"
    )
    parser.add_argument(
        "--url",
        help="postgresql://user@host:port/db of an existing server "
        "(a superuser: databases named bench_* are created and dropped) "
        "instead of a throwaway one",
    )
    parser.add_argument(
        "--conveyor-ref", help="measure Conveyor at this git ref (default: the working tree)"
    )
    parser.add_argument("--json", type=Path, help="also write every raw result here")
    args = parser.parse_args(argv)
    args.measures = set(args.measures.split(","))
    unknown = {p for p in args.peers.split(",") if p} - set(PEERS)
    if unknown:
        parser.error(f"unknown peers: {', '.join(sorted(unknown))}; known: {', '.join(PEERS)}")

    WORK_DIR.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="pg-run-", dir=WORK_DIR))
    started = time.monotonic()
    server = Server(args.url)
    try:
        systems, failed = describe(args, server, tmp)
        print("\n".join(machine(server)), flush=True)
        results: list[Result] = []
        for n in range(args.repeat):
            results += one_round(n, args, systems, server)
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
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"median of {args.repeat} round(s); {args.jobs:,} jobs per rate, "
        f"{args.latency_jobs:,} at {args.rate:g}/s for latency; "
        f"{time.monotonic() - started:.0f} s in all; load average {load} at the end"
    )
    print(table(results, systems, failed, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
