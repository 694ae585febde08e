"""The table `redis_bench.py` prints: medians per measure and system, ratio to the best peer."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
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
]
#: The floor shown beside a row: redis-py, one LPUSH per job, or pipelined.
FLOOR = {"enqueue": "floor_lpush", "async": "floor_lpush", "bulk": "floor_pipelined"}


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
        if key.startswith("latency."):
            return float(self.report[key.split(".", 1)[1]])
        if self.measure.startswith("floor_"):
            return jobs / float(self.report[self.measure.removeprefix("floor_")])
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
    Conveyor's ratio to it (above 1: Conveyor is better) and the redis-py floor."""
    med, errors = medians(results, args)
    names = list(systems)
    peers = [n for n in names if n != "conveyor"]
    head = (
        f"{'measure':38}"
        + "".join(f"{n:>9}" for n in names)
        + f"{'best peer':>17} {'ratio':>6} {'floor':>8}"
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
                else (f"{'fail':>9}" if (key, n) in errors else f"{'-':>9}")
            )
        scored = [(med[(key, p)], p) for p in peers if (key, p) in med]
        best = (min(scored) if unit == "ms" else max(scored)) if scored else None
        mine = med.get((key, "conveyor"))
        best_s = f"{_cell(best[0], unit).strip()} {best[1]}" if best else "n/a"
        ratio = "   n/a"
        if best and mine:
            ratio = f"{(best[0] / mine if unit == 'ms' else mine / best[0]):5.2f}x"
        floor = med.get((FLOOR.get(key, ""), "floor"))
        floor_s = f"{floor:8.0f}" if floor is not None else f"{'':8}"
        lines.append(
            f"{label.format(**vars(args)):38}"
            + "".join(cells)
            + f"{best_s:>17} {ratio:>6} {floor_s}"
        )
    lines.append(
        "ratio: Conveyor / best peer for rates, best peer / Conveyor for latency "
        "(above 1: Conveyor is better)"
    )
    lines += _floor_lines(med, args)
    lines += _notes(systems, failed, errors, args)
    return "\n".join(lines)


def _cell(v: float, unit: str) -> str:
    return f"{v:9.1f}" if unit == "ms" else f"{v:9.0f}"


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
    for (key, name), why in sorted(errors.items()):
        out.append(f"  {name} failed {key} in every round: {why[:300]}")
    return out
