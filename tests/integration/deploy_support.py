"""What the deploy tests share: finding the real tools, a test app with a ledger, waiting.

A tool missing here skips the test locally and fails it under ``CI`` (the ``test`` extra of
pyproject.toml installs the Python ones; ``systemd-analyze`` comes with systemd).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

APP = '''
"""The deploy tests' app: each job appends "<n> <pid>" to $DEPLOY_LEDGER when it ends."""
import os
import subprocess
import time
from pathlib import Path

from conveyor import Conveyor

app = Conveyor()


@app.task(name="deploy.record", retries=0)
def record(n: int, hold: float = 0.0) -> int:
    """With ``hold``: write the worker's pid to $DEPLOY_LEDGER.started-<n>, then run until
    $DEPLOY_LEDGER.go-<n> exists (at most ``hold`` seconds)."""
    ledger = os.environ["DEPLOY_LEDGER"]
    if hold:
        Path(f"{ledger}.started-{n}").write_text(str(os.getpid()))
        deadline = time.monotonic() + hold
        while not Path(f"{ledger}.go-{n}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    with open(ledger, "a") as out:
        out.write(f"{n} {os.getpid()}\\n")
    return n


@app.task(name="deploy.spawn", retries=0)
def spawn(n: int) -> None:
    """A job with a child process of its own (a converter, a shell-out): its pid goes to
    $DEPLOY_LEDGER.child-<n>."""
    child = subprocess.Popen(["sleep", "120"])
    Path(os.environ["DEPLOY_LEDGER"] + f".child-{n}").write_text(str(child.pid))
    child.wait()
'''

ENQUEUE = """
import sys
from deploy_app import record, spawn
for spec in sys.argv[1:]:
    n, queue, hold = spec.split(":")
    if hold == "spawn":
        spawn.options(queue=queue).enqueue(int(n))
    else:
        record.options(queue=queue).enqueue(int(n), float(hold))
"""


def tool(name: str, hint: str) -> str:
    """The path of ``name`` (on PATH or beside this Python); skip, or fail under CI."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed ({hint})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


def ledger(path: Path) -> list[tuple[int, int]]:
    """The ledger's ``(job number, worker pid)`` lines."""
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(int(n), int(pid)) for n, pid in rows]


def make_app(workdir: Path) -> None:
    """The test app in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "deploy_app.py").write_text(APP)


def enqueue(workdir: Path, env: Mapping[str, str], *specs: str) -> None:
    """Enqueue ``n:queue:hold`` jobs through the app, in ``workdir`` (``n:queue:spawn``: a
    job that starts a child process)."""
    subprocess.run(
        [sys.executable, "-c", ENQUEUE, *specs],
        cwd=workdir,
        env=dict(env),
        check=True,
        timeout=60,
        capture_output=True,
    )


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
