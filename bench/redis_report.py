"""The table `redis_bench.py` prints: medians per measure and system, ratio to the best peer."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: (key, label, unit): "rate" is jobs per second (higher is better), "ms" a latency
#: percentile (lower is better).
ROWS = [
    ("enqueue", "enqueue: one call per job", "rate"),
    ("async", "enqueue: async, {producers} coroutines", "rate"),
    ("bulk", "enqueue: bulk, batches of {batch:,}", "rate"),
    ("drain1", "drain: 1 worker process", "rate"),
    ("drain2", "drain: 2 worker processes", "rate"),
    ("latency.p50", "pickup latency p50 (ms)", "ms"),
    ("latency.p95", "pickup latency p95 (ms)", "ms"),
    ("latency.p99", "pickup latency p99 (ms)", "ms"),
    ("enqueue.server_us", "redis CPU per enqueued job (us)", "us"),
    ("drain1.server_us", "redis CPU per drained job, 1 proc (us)", "us"),
    ("drain2.server_us", "redis CPU per drained job, 2 procs (us)", "us"),
    ("enqueue.memory_bytes", "redis memory per queued job (bytes)", "bytes"),
    ("enqueue.client_us", "producer CPU per enqueue call (us)", "us"),
]
#: Units where lower is better.
LOWER = {"ms", "us", "bytes"}
#: Conveyor's two columns: workers at their defaults, and at the benchmark's concurrency.
MINE = ("conveyor", "conveyor32")
#: The floor shown beside a row: redis-py, one LPUSH per job, or pipelined.
FLOOR = {
    "enqueue": "floor_lpush",
    "async": "floor_lpush",
    "bulk": "floor_pipelined",
    "enqueue.server_us": "floor_lpush_server_us",
    "enqueue.memory_bytes": "floor_lpush_memory_bytes",
    "enqueue.client_us": "floor_lpush_client_us",
}


@dataclass(slots=True)
class Result:
    """One driver report: seconds for a rate, percentiles for latency, or an error."""

    measure: str
    system: str
    report: dict[str, Any]

    def value(self, key: str, jobs: int) -> float | None:
        """Jobs/s for rates, milliseconds for ``latency.pNN``; ``None`` on error."""
        if "error" in self.report:
            return None
        if "." in key:
            got = self.report.get(key.split(".", 1)[1])
            return None if got is None else float(got)
        if self.measure.startswith("floor_"):
            name = self.measure.removeprefix("floor_")
            if name.endswith(("_us", "_bytes")):
                return float(self.report[name])
            return jobs / float(self.report[name])
        return jobs / float(self.report["seconds"])

    def as_json(self) -> dict[str, Any]:
        """For ``--json``."""
        return {"measure": self.measure, "system": self.system, **self.report}


def machine(redis_version: str) -> list[str]:
    """What the numbers were measured on."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"machine : {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"load average {load} at the start",
        f"python  : {platform.python_version()} ({sys.executable})",
        f"redis   : redis-server {redis_version}, 127.0.0.1, appendonly yes, appendfsync everysec",
    ]


def medians(
    results: list[Result], args: argparse.Namespace
) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], str]]:
    """Median per (row key, system), and the first error where every round failed."""
    jobs = {"latency": args.latency_jobs}
    values: dict[tuple[str, str], list[float]] = {}
    errors: dict[tuple[str, str], str] = {}
    for r in results:
        keys = [k for k, _, _ in ROWS if k.split(".")[0] == r.measure] or [r.measure]
        for key in keys:
            v = r.value(key, jobs.get(r.measure, args.jobs))
            if v is None:
                if "error" in r.report:
                    errors.setdefault((key, r.system), str(r.report["error"]))
            else:
                values.setdefault((key, r.system), []).append(v)
    med = {k: statistics.median(v) for k, v in values.items()}
    return med, {k: e for k, e in errors.items() if k not in med}


def table(
    results: list[Result],
    systems: dict[str, dict[str, Any]],
    failed: dict[str, str],
    args: argparse.Namespace,
) -> str:
    """The results: one row per measure, one column per system, then the best peer,
    Conveyor's ratio to it at its defaults and tuned (above 1: Conveyor is better) and
    the redis-py floor."""
    med, errors = medians(results, args)
    names = list(systems)
    peers = [n for n in names if n not in MINE]
    head = (
        f"{'measure':41}"
        + "".join(f"{n:>11}" for n in names)
        + f"{'best peer':>17} {'ratio':>6} {'tuned':>6} {'floor':>8}"
    )
    lines = [head, "-" * len(head)]
    for key, label, unit in ROWS:
        if key.split(".")[0] not in args.measures:
            continue
        cells = []
        for n in names:
            v = med.get((key, n))
            cells.append(
                _cell(v, unit)
                if v is not None
                else (f"{'fail':>11}" if (key, n) in errors else f"{'-':>11}")
            )
        scored = [(med[(key, p)], p) for p in peers if (key, p) in med]
        best = (min(scored) if unit in LOWER else max(scored)) if scored else None
        best_s = f"{_cell(best[0], unit).strip()} {best[1]}" if best else "n/a"
        ratios = []
        for mine in (med.get((key, m)) for m in MINE):
            ratio = "     -"
            if best and mine:
                ratio = f"{(best[0] / mine if unit in LOWER else mine / best[0]):5.2f}x"
            ratios.append(ratio)
        floor = med.get((FLOOR.get(key, ""), "floor"))
        floor_s = _cell(floor, unit).strip() if floor is not None else ""
        lines.append(
            f"{label.format(**vars(args)):41}"
            + "".join(cells)
            + f"{best_s:>17} {ratios[0]:>6} {ratios[1]:>6} {floor_s:>8}"
        )
    lines.append(
        "ratio: Conveyor (workers at their defaults) / best peer for rates, best peer /"
        " Conveyor where lower is better (above 1: Conveyor is better); tuned: the same for"
        f" {MINE[1]}, its workers at --concurrency {args.concurrency}"
    )
    lines += _floor_lines(med, args)
    lines += _notes(systems, failed, errors, args)
    return "\n".join(lines)


def _cell(v: float, unit: str) -> str:
    return f"{v:11.1f}" if unit in ("ms", "us") else f"{v:11.0f}"


def _floor_lines(med: dict[tuple[str, str], float], args: argparse.Namespace) -> list[str]:
    """The floor in full, and Conveyor's single-call enqueue against it."""
    lpush, incr = med.get(("floor_lpush", "floor")), med.get(("floor_incr", "floor"))
    pipelined = med.get(("floor_pipelined", "floor"))
    if lpush is None or incr is None or pipelined is None:
        return ["floor   : not measured"]
    out = [
        f"floor   : redis-py, one process: {lpush:,.0f} LPUSH/s and {incr:,.0f} INCR/s "
        f"one call each (sync), {pipelined:,.0f} LPUSH/s pipelined by {args.batch:,}"
    ]
    mine = med.get(("enqueue", "conveyor"))
    if mine is not None:
        out.append(
            f"          Conveyor's single-call enqueue is {mine / lpush:.2f}x the one-command floor"
        )
    return out


def _notes(
    systems: dict[str, dict[str, Any]],
    failed: dict[str, str],
    errors: dict[tuple[str, str], str],
    args: argparse.Namespace,
) -> list[str]:
    """Versions, settings, APIs used, and what failed."""
    out = ["settings (per worker process):"]
    for info in systems.values():
        settings = str(info["settings"]).replace("{c}", str(args.concurrency))
        api = "sync" if info["sync"] else "async only (awaited one by one)"
        bulk = info["bulk_api"] or "none"
        out.append(f"  {info['version']}: {settings}; enqueue API: {api}; bulk: {bulk}")
    for name, why in failed.items():
        out.append(f"  {name}: {why}")
    shown = set()
    for (key, name), why in sorted(errors.items()):
        measure = key.split(".")[0]
        if (measure, name) not in shown:
            shown.add((measure, name))
            out.append(f"  {name} failed {measure} in every round: {why[:300]}")
    return out


def byte_compiled(*sources: Path) -> None:
    """Byte-compile ``sources`` now, as pip does for every package it installs.

    The peers' code was compiled when pip installed it; Conveyor's editable checkout (or the
    tree unpacked from a ref) and this directory's peer modules are not, and where Python
    does not write bytecode (``PYTHONDONTWRITEBYTECODE``, a read-only tree) every worker
    would compile them again at its start, inside the timed drain.
    """
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *(str(s) for s in sources)],
        check=True,
        capture_output=True,
    )
