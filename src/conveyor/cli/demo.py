"""``conveyor demo``: a few thousand jobs through real worker processes, on a SQLite file.

Needs no server. Workers are ``conveyor worker --app conveyor.demo:app`` subprocesses;
the command enqueues in bulk, shows progress, stops the workers with SIGTERM and prints a
summary computed from the stored job records.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from conveyor.backends.capabilities import Admin, Telemetry
from conveyor.cli.common import err, fail, handle_errors
from conveyor.cli.demo_report import print_summary, summarize
from conveyor.cli.loading import set_url
from conveyor.job import FINAL_STATES, JobQuery, JobRecord

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.backends.base import Backend

EXIT_TIMEOUT = 1
LEASE_SECONDS = 3.0


class DemoFailed(Exception):
    """The demo could not finish (timeout, workers crashed)."""


@dataclass(slots=True)
class DemoRun:
    """What one demo run needs and collects."""

    app: Conveyor
    jobs: int
    workers: int
    concurrency: int
    timeout: float
    log: IO[bytes]
    env: dict[str, str]
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    elapsed: float = 0.0
    deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.timeout


async def _finished(backend: Backend) -> int:
    return sum(
        n
        for row in await backend.admin.stats()
        for state, n in row.counts.items()
        if state in FINAL_STATES
    )


def _check(run: DemoRun, what: str) -> None:
    if time.monotonic() > run.deadline:
        raise DemoFailed(f"timed out after {run.timeout:g}s while {what}")
    if run.procs and all(p.returncode is not None for p in run.procs):
        codes = ", ".join(str(p.returncode) for p in run.procs)
        raise DemoFailed(f"every worker exited (codes {codes}) while {what}")


async def _start_workers(run: DemoRun, backend: Backend) -> None:
    cmd = [
        sys.executable,
        "-m",
        "conveyor",
        "worker",
        "--app",
        "conveyor.demo:app",
        "--concurrency",
        str(run.concurrency),
        "--lease-seconds",
        str(LEASE_SECONDS),
        "--sleep",
        "0.05",
        "--grace-period",
        "10",
        "--log-level",
        "warning",
    ]
    for _ in range(run.workers):
        run.procs.append(
            await asyncio.create_subprocess_exec(
                *cmd,
                env=run.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=run.log,
                stderr=run.log,
            )
        )
    pids = {p.pid for p in run.procs}
    while len({w.pid for w in await backend.telemetry.workers()} & pids) < run.workers:
        _check(run, "waiting for the workers to start")
        await asyncio.sleep(0.1)


async def _enqueue(run: DemoRun, backend: Backend) -> None:
    from conveyor.demo import workload

    specs = workload(run.jobs)
    for start in range(0, len(specs), 500):
        handles = await run.app.enqueue_many_async(specs[start : start + 500])
        run.ids.update(h.id for h in handles)


async def _watch(run: DemoRun, backend: Backend, baseline: int) -> None:
    columns = (
        TextColumn("[bold]jobs finished"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    plain = not err.is_terminal
    last_line = 0.0
    with Progress(*columns, console=err, transient=False, disable=plain) as progress:
        bar = progress.add_task("jobs", total=run.jobs)
        while True:
            done = min(run.jobs, await _finished(backend) - baseline)
            progress.update(bar, completed=done)
            if plain and (time.monotonic() - last_line >= 2.0 or done >= run.jobs):
                last_line = time.monotonic()
                err.print(f"jobs finished: {done}/{run.jobs}", highlight=False)
            if done >= run.jobs:
                return
            _check(run, f"running jobs ({done}/{run.jobs} finished)")
            await asyncio.sleep(0.1)


async def _stop_workers(procs: list[asyncio.subprocess.Process], wait: float) -> None:
    for p in procs:
        if p.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            await asyncio.wait_for(p.wait(), wait)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            await p.wait()


async def _records(run: DemoRun, backend: Backend) -> list[JobRecord]:
    found: list[JobRecord] = []
    offset, page = 0, 1000
    while True:
        batch = await backend.admin.query(JobQuery(limit=page, offset=offset))
        found += [j for j in batch if j.id in run.ids]
        if len(batch) < page:
            return found
        offset += page


async def _run(run: DemoRun) -> list[JobRecord]:
    # It counts jobs and waits for the workers to register: say so before any starts.
    run.app.backend.require(Admin, Telemetry, purpose="`conveyor demo`")
    backend = await run.app.open()
    try:
        baseline = await _finished(backend)
        await _start_workers(run, backend)
        t0 = time.monotonic()
        await _enqueue(run, backend)
        await _watch(run, backend, baseline)
        run.elapsed = time.monotonic() - t0
        await _stop_workers(run.procs, wait=15.0)
        return await _records(run, backend)
    finally:
        await _stop_workers(run.procs, wait=5.0)
        await run.app.aclose()


@handle_errors
def demo(
    jobs: Annotated[int, typer.Option(min=1, help="How many jobs to enqueue.")] = 3000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes to start.")] = 2,
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs each worker runs at once.")] = 20,
    db: Annotated[
        Path | None, typer.Option(help="SQLite file to use (default: one in a temp dir).")
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, help="Give up (and stop the workers) after this many s.")
    ] = 120.0,
) -> None:
    """Run the example app end to end: no server needed, only a SQLite file.

    Enqueues jobs on the jobs, mail and events queues at every priority (some delayed, some
    failing once, some ending dead), runs them in worker subprocesses with a progress bar,
    then prints throughput and pickup latency. Exits 1 on timeout.
    """
    with tempfile.TemporaryDirectory(prefix="conveyor-demo-") as tmp:
        path = (db or Path(tmp) / "demo.db").resolve()
        url = f"sqlite:///{path}"
        log_path = Path(tmp) / "workers.log"
        env = {**os.environ, "CONVEYOR_URL": url, "PYTHONUNBUFFERED": "1"}
        from conveyor.demo import app

        set_url(app, url)
        err.print(
            f"conveyor demo: {jobs} jobs, {workers} worker(s) x {concurrency}, {url}",
            highlight=False,
        )
        with log_path.open("wb") as log:
            run = DemoRun(app, jobs, workers, concurrency, timeout, log, env)
            try:
                records = asyncio.run(_run(run))
            except DemoFailed as exc:
                log.flush()
                _show_log_tail(log_path)
                fail(f"demo failed: {exc}", EXIT_TIMEOUT)
        print_summary(summarize(records, run.elapsed), workers=workers)


def _show_log_tail(path: Path, lines: int = 20) -> None:
    text = path.read_text("utf-8", "replace").splitlines()[-lines:]
    if text:
        err.print("last worker log lines:", highlight=False)
        for line in text:
            err.print(f"  {line}", markup=False, highlight=False)
