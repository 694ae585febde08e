"""``conveyor worker --loop``: the worker runs on uvloop where it is installed, on asyncio's
loop when asked, and an unknown loop is one line and exit 2 before anything starts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.integration.cli_support import Run, conveyor_cli
from tests.unit.test_worker_loops import uvloop_installed

TASKS = """
from pathlib import Path

from conveyor import Conveyor

app = Conveyor()


@app.task(name="touch")
async def touch(path: str) -> None:
    Path(path).write_text("ran")
"""


@pytest.fixture
def cli(tmp_path: Path) -> Run:
    (tmp_path / "loops_app.py").write_text(TASKS)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "WORKER_"))}
    path = os.pathsep.join(p for p in (str(tmp_path), base.get("PYTHONPATH")) if p)
    env = {**base, "CONVEYOR_URL": f"sqlite:///{tmp_path / 'x.db'}", "PYTHONPATH": path}
    return conveyor_cli(tmp_path, env)


def run_one(cli: Run, tmp_path: Path, *flags: str, env: dict[str, str] | None = None) -> str:
    """Enqueue one job, run a burst worker with ``flags``; the worker's banner line."""
    marker = tmp_path / "ran.txt"
    marker.unlink(missing_ok=True)
    args = json.dumps([str(marker)])
    enqueued = cli("enqueue", "--app", "loops_app:app", "touch", "--args", args)
    assert enqueued.returncode == 0, enqueued.stderr
    done = cli("worker", "--burst", "--app", "loops_app:app", *flags, extra_env=env)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "ran"
    return next(line for line in done.stderr.splitlines() if line.startswith("conveyor worker"))


def test_loop_asyncio_runs_jobs_on_the_standard_loop(cli: Run, tmp_path: Path) -> None:
    assert "· loop asyncio" in run_one(cli, tmp_path, "--loop", "asyncio")


def test_the_default_loop_is_uvloop_where_it_is_installed(cli: Run, tmp_path: Path) -> None:
    if not uvloop_installed():
        pytest.skip("uvloop is not installed")
    assert "· loop uvloop" in run_one(cli, tmp_path)


def test_an_unknown_loop_is_one_line_and_exit_2(cli: Run) -> None:
    done = cli("worker", "--burst", "--app", "loops_app:app", "--loop", "trio")
    assert done.returncode == 2
    assert "unknown event loop 'trio'" in done.stderr
    assert "Traceback" not in done.stderr


def test_worker_loop_setting_opts_out_and_the_flag_wins(cli: Run, tmp_path: Path) -> None:
    # WORKER_LOOP=asyncio (as a supervised pool's workers read it) keeps asyncio's loop
    assert "· loop asyncio" in run_one(cli, tmp_path, env={"WORKER_LOOP": "asyncio"})
    if uvloop_installed():
        # and --loop wins over it
        banner = run_one(cli, tmp_path, "--loop", "uvloop", env={"WORKER_LOOP": "asyncio"})
        assert "· loop uvloop" in banner


def test_an_unknown_worker_loop_setting_is_one_line_and_exit_2(cli: Run) -> None:
    done = cli("worker", "--burst", "--app", "loops_app:app", extra_env={"WORKER_LOOP": "trio"})
    assert done.returncode == 2
    assert "WORKER_LOOP='trio'" in done.stderr
    assert "Traceback" not in done.stderr
