"""``conveyor schedule run``: Laravel's ``schedule:run`` from the system's cron.

Two runs at once (two hosts' crons firing the same minute) on one store enqueue each due
entry once; ``--work`` then runs the due jobs and exits. Real CLI processes, on SQLite and
Redis.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.contract.support import BACKEND_URLS

APP_SOURCE = """
from pathlib import Path

from conveyor import Conveyor

app = Conveyor()


@app.cron("* * * * *", name="every-minute")
def every_minute() -> None:
    with Path("ran.txt").open("a") as f:
        f.write("every-minute\\n")


@app.cron("* * * * *", name="also-every-minute")
def also() -> None:
    with Path("ran.txt").open("a") as f:
        f.write("also-every-minute\\n")
"""


@pytest.fixture(params=["sqlite", "redis"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "cronapp.py").write_text(APP_SOURCE)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "WORKER_"))}
    path = os.pathsep.join(p for p in (str(tmp_path), base.get("PYTHONPATH")) if p)
    url = BACKEND_URLS[request.param](tmp_path)
    return {**base, "CONVEYOR_URL": url, "PYTHONPATH": path}


def start(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    try:
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    return out


def test_two_runs_at_once_fire_each_due_entry_once(tmp_path: Path, env: dict[str, str]) -> None:
    # Given two hosts' crons starting `conveyor schedule run` at the same time
    command = ("schedule", "run", "--app", "cronapp:app", "--json")
    runs = [start(tmp_path, env, *command) for _ in range(2)]
    fired = [
        (row["entry"], row["tick"]) for run in runs for row in json.loads(finish(run))["fired"]
    ]
    # Then each entry's tick was enqueued by exactly one of them (two runs that straddle a
    # minute rightly fire both minutes' ticks, each once)
    assert len(fired) == len(set(fired)), fired
    assert {entry for entry, _ in fired} == {"also-every-minute", "every-minute"}
    # And --work runs the due jobs, then exits (here those of one task, by its short name)
    only = {**env, "WORKER_JOB_TYPES": "every_minute"}
    out = finish(start(tmp_path, only, *command, "--work"))
    fired += [(row["entry"], row["tick"]) for row in json.loads(out)["fired"]]
    ran = (tmp_path / "ran.txt").read_text().split()
    assert ran == ["every-minute"] * sum(entry == "every-minute" for entry, _ in fired)
