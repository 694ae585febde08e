"""Many schedulers at once on SQLite: each tick is enqueued exactly once; worker modes.

In process: three apps (three backend handles on one file) on one fake clock, moved
through ten ticks. The real-process scheduler tests (three ``conveyor scheduler`` at once,
missed-tick policies) run on every store in ``tests/acceptance/test_scheduler.py``.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from conveyor import Conveyor
from conveyor.clock import FakeClock
from conveyor.job import JobQuery
from conveyor.scheduler import Scheduler
from conveyor.settings import load_settings

NOON = datetime(2024, 1, 1, 12, 0, tzinfo=UTC).timestamp()

APP_SOURCE = """
from conveyor import Conveyor

app = Conveyor()


@app.periodic(every=1, name="heartbeat", missed="run_each")
async def beat() -> None: ...


@app.cron("*/5 * * * *", timezone="Europe/Paris", missed="skip", name="prune")
def prune(days: int = 7) -> None: ...
"""


def make_app(url: str, clock: FakeClock) -> Conveyor:
    app = Conveyor(url, settings=load_settings(), clock=clock)

    @app.cron("* * * * *", name="minutely")
    async def minutely() -> None: ...

    return app


async def test_three_schedulers_on_one_file_enqueue_each_tick_once(tmp_path: Path) -> None:
    # Given three schedulers, each with its own app and connection to one SQLite file
    url = f"sqlite:///{tmp_path / 's.db'}"
    clock = FakeClock(NOON + 1)
    apps = [make_app(url, clock) for _ in range(3)]
    schedulers = [Scheduler(a, interval=1.0) for a in apps]
    try:
        # When they all tick, concurrently, through ten minutes
        for _ in range(10):
            for _ in range(3):
                await asyncio.gather(*(s.tick() for s in schedulers))
                clock.advance(1)
            clock.advance(57)

        # Then one of them led and each of the ten ticks became exactly one job
        assert sum(s.is_leader for s in schedulers) == 1
        backend = await apps[0].open()
        jobs = await backend.admin.query(JobQuery(limit=1000))
        ticks = sorted(j.headers["tick"] for j in jobs)
        assert len(ticks) == 10 and len(set(ticks)) == 10
        assert sum(len(s.fired) for s in schedulers) == 10
    finally:
        for a in apps:
            await a.aclose()


def _env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "cronapp.py").write_text(APP_SOURCE)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "WORKER_"))}
    path = os.pathsep.join(p for p in (str(tmp_path), base.get("PYTHONPATH")) if p)
    return {
        **base,
        "CONVEYOR_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "PYTHONPATH": path,
        "SCHEDULER_INTERVAL": "0.2",
    }


def test_worker_modes_route_jobs_and_run_the_scheduler(tmp_path: Path) -> None:
    env = _env(tmp_path)
    run = [sys.executable, "-m", "conveyor"]
    for _ in range(3):
        subprocess.run(
            [*run, "enqueue", "--app", "cronapp:app", "cronapp.prune"],
            env=env,
            cwd=tmp_path,
            check=True,
            capture_output=True,
            timeout=30,
        )
    # A job-specialized worker for another task type takes none of them...
    other = subprocess.run(
        [
            *run,
            "worker",
            "--app",
            "cronapp:app",
            "--burst",
            "--mode",
            "job-specialized",
            "--job-types",
            "cronapp.beat",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert other.returncode == 0, other.stderr
    assert "worker mode job-specialized" in other.stderr and "scheduler=off" in other.stderr
    db = tmp_path / "x.db"
    with sqlite3.connect(db) as conn:
        states = conn.execute("SELECT state FROM conveyor_jobs WHERE task = 'cronapp.prune'")
        assert {r[0] for r in states} == {"ready"}
    # ... and a thin worker drains them, with its built-in scheduler beside it.
    thin = subprocess.run(
        [*run, "worker", "--app", "cronapp:app", "--burst", "--mode", "thin"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert thin.returncode == 0, thin.stderr
    assert "concurrency=5 scheduler=on" in thin.stderr
    with sqlite3.connect(db) as conn:
        states = conn.execute("SELECT state FROM conveyor_jobs WHERE task = 'cronapp.prune'")
        assert {r[0] for r in states} == {"succeeded"}
    # A mode missing what it needs stops with the variables named (exit code 2).
    bad = subprocess.run(
        [*run, "worker", "--app", "cronapp:app", "--mode", "specialized"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "WORKER_MODE=specialized" in bad.stderr and "WORKER_PRIORITIES" in bad.stderr
