"""The job store on the real CLI: an empty ``CONVEYOR_URL`` (an environment file line never
filled in) stops a worker naming the variable, instead of running it on a new SQLite file.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.integration.cli_support import conveyor_cli

APP_SOURCE = """
from conveyor import Conveyor

app = Conveyor()


@app.task(name="noop")
def noop() -> None: ...
"""


def test_a_worker_with_an_empty_conveyor_url_exits_2_naming_it(tmp_path: Path) -> None:
    (tmp_path / "emptyurlapp.py").write_text(APP_SOURCE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "QUEUE_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tmp_path), env.get("PYTHONPATH")) if p)
    cli = conveyor_cli(tmp_path, {**env, "CONVEYOR_URL": ""})
    # When a worker starts with CONVEYOR_URL= (as a systemd EnvironmentFile may set it)
    proc = cli("worker", "--app", "emptyurlapp:app", "--burst")
    # Then it refuses in one line naming the variable, and creates no store
    assert proc.returncode == 2, proc.stderr
    assert "CONVEYOR_URL='': the job store's URL is empty; set it" in proc.stderr
    assert not (tmp_path / "conveyor.db").exists()
    # While --url gives the store, and the worker runs
    proc = cli("worker", "--app", "emptyurlapp:app", "--burst", "--url", "sqlite:///given.db")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "given.db").exists() and not (tmp_path / "conveyor.db").exists()
    # And says nothing about the empty variable it did not need
    assert "CONVEYOR_URL=''" not in proc.stderr, proc.stderr
