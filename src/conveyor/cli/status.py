"""``conveyor status`` and ``conveyor workers``: what is queued, running and done."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from conveyor.backends.capabilities import TOPOLOGY_PREFIX, Admin, Telemetry
from conveyor.cli.common import (
    AppOption,
    JsonOption,
    UrlOption,
    handle_errors,
    out,
    print_json,
    run_with_backend,
)
from conveyor.cli.loading import resolve_app
from conveyor.job import QueueStats, State, WorkerInfo
from conveyor.redaction import display_url
from conveyor.timefmt import fmt_duration

if TYPE_CHECKING:
    from conveyor.backends.base import Backend

#: Columns of the status table, in life order.
STATES = (State.SCHEDULED, State.READY, State.RUNNING, State.SUCCEEDED, State.DEAD, State.CANCELLED)


#: What ``status`` says in place of the worker count on a store without `Telemetry`.
NO_REGISTRY = "this store keeps no worker registry: live workers are not listed"


@dataclass(slots=True)
class Snapshot:
    """One read of the backend: per-queue counts, counters and live workers.

    ``workers`` is ``None`` when the store keeps no worker registry (no `Telemetry`).
    """

    queues: list[QueueStats]
    counters: dict[str, int]
    workers: list[WorkerInfo] | None
    diagnostics: list[str] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        """Jobs per state over every queue and priority."""
        sums = {s.value: 0 for s in STATES}
        for row in self.queues:
            for state, n in row.counts.items():
                sums[state.value] = sums.get(state.value, 0) + n
        return sums


async def snapshot(backend: Backend) -> Snapshot:
    """Read stats, counters and (when the store keeps them) workers from ``backend``."""
    admin = backend.admin
    live = await backend.telemetry.workers() if backend.supports(Telemetry) else None
    return Snapshot(
        await admin.stats(),
        await admin.counters(),
        live,
        await admin.diagnostics(),
    )


def status_json(url: str, snap: Snapshot) -> dict[str, Any]:
    """The ``status --json`` document."""
    return {
        "url": display_url(url),
        "queues": [
            {
                "queue": row.queue,
                "priority": row.priority.label,
                **{s.value: row.counts.get(s, 0) for s in STATES},
            }
            for row in snap.queues
        ],
        "totals": snap.totals(),
        "counters": snap.counters,
        "workers": None if snap.workers is None else len(snap.workers),
        "diagnostics": snap.diagnostics,
    }


@handle_errors
def status(app_spec: AppOption = None, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Jobs per queue and priority by state, totals, lease counters, live workers, and
    warnings about the store's health (e.g. a PostgreSQL transaction holding back vacuum).

    Succeeded and cancelled jobs count while they are kept (RESULT_TTL), dead ones for
    DEAD_TTL. On a store that keeps no worker registry, says so instead of counting workers
    (``"workers": null`` in JSON).
    """
    app = resolve_app(app_spec, url)
    snap = run_with_backend(app, snapshot, needs=[Admin], purpose="`conveyor status`")
    if as_json:
        print_json(status_json(app.url, snap))
        return
    table = Table(title=f"Conveyor · {display_url(app.url)}", title_justify="left")
    table.add_column("queue")
    table.add_column("priority")
    for s in STATES:
        table.add_column(s.value, justify="right", min_width=len(s.value))
    for row in snap.queues:
        table.add_row(row.queue, row.priority.label, *(_n(row.counts.get(s, 0)) for s in STATES))
    totals = snap.totals()
    table.add_section()
    table.add_row("total", "", *(_n(totals[s.value]) for s in STATES), style="bold")
    out.print(table)
    c = snap.counters
    live = "" if snap.workers is None else f"workers live: {len(snap.workers)}   "
    out.print(
        f"{live}lease counters: fenced {c.get('fenced', 0)}, "
        f"recovered {c.get('recovered', 0)}, poisoned {c.get('poisoned', 0)}",
        highlight=False,
    )
    if snap.workers is None:
        out.print(NO_REGISTRY, highlight=False)
    for line in shown_diagnostics(snap.diagnostics):
        out.print(line, highlight=False)


def shown_diagnostics(lines: list[str]) -> list[str]:
    """The store's diagnostics as ``conveyor status`` prints them (rich markup): a
    `TOPOLOGY_PREFIX` line as it is (where the store is), every other one as a warning."""
    return [
        escape(line)
        if line.startswith(TOPOLOGY_PREFIX)
        else f"[bold yellow]warning:[/] {escape(line)}"
        for line in lines
    ]


def _n(value: int) -> str:
    return f"{value:,}" if value else "[dim]0[/]"


def worker_row(info: WorkerInfo, now: float) -> dict[str, Any]:
    """One live worker as plain data."""
    stats = info.stats
    return {
        "id": info.id,
        "host": info.host,
        "pid": info.pid,
        "pool": info.pool,
        "queues": list(info.queues) if info.queues else ["*"],
        "processed": stats.get("processed", 0),
        "failed": stats.get("failed", 0),
        "utilisation": stats.get("utilisation"),
        "running": stats.get("running", 0),
        "concurrency": stats.get("concurrency"),
        "uptime": round(max(0.0, now - info.started_at), 1),
        "rss_mb": stats.get("rss_mb"),
        "last_seen": info.last_seen,
    }


@handle_errors
def workers(app_spec: AppOption = None, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Live workers from the backend's registry."""
    app = resolve_app(app_spec, url)

    async def read(backend: Backend) -> list[WorkerInfo]:
        return await backend.telemetry.workers()

    live = run_with_backend(app, read, needs=[Telemetry], purpose="`conveyor workers`")
    now = time.time()
    rows = [worker_row(w, now) for w in sorted(live, key=lambda w: w.id)]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} live worker(s)", title_justify="left")
    columns = (
        "id",
        "host",
        "pid",
        "pool",
        "queues",
        "running",
        "processed",
        "failed",
        "util",
        "uptime",
        "rss",
    )
    for name in columns:
        numeric = name in ("pid", "running", "processed", "failed", "util")
        table.add_column(name, justify="right" if numeric else "left")
    for r in rows:
        rss = "-" if r["rss_mb"] is None else f"{r['rss_mb']:.0f} MB"
        running = f"{r['running']}/{r['concurrency'] or '?'}"
        util = "-" if r["utilisation"] is None else f"{r['utilisation']:.0%}"
        table.add_row(
            r["id"],
            r["host"],
            str(r["pid"]),
            r["pool"] or "-",
            ",".join(r["queues"]),
            running,
            str(r["processed"]),
            str(r["failed"]),
            util,
            fmt_duration(r["uptime"]),
            rss,
        )
    out.print(table)
