"""supervisord runs `conveyor export supervisord`'s file as written (issue 18).

supervisord from the package index runs as a child of the test with its own config, socket
and log directories in a temp dir; the exported file is used unchanged, only the paths passed
as flags (``--venv``, ``--workdir``, ``--conf-dir``, ``--ctl-config``) are this machine's.
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.deploy_support import alive, enqueue, ledger, make_app, tool, wait_for

pytestmark = pytest.mark.timeout(240)

DOCS = Path(__file__).parents[2] / "docs" / "deployment.md"
#: docs/deployment.md's rolling restart under supervisord, run here with `-c CONFIG`.
ROLLING = "supervisorctl status 'conveyor:*' | awk '{print $1}' | xargs -n1 supervisorctl restart"
#: The app's directory, with characters supervisord and a shell would read as their syntax.
ODD_DIR = "app 50%$off"
POOLS = """
queue_multi_worker = true

[pools.alpha]       # recycles after every second job
queues = ["alpha"]
processes = 2
max_jobs = 2

[pools.beta]
queues = ["beta"]
processes = 2
"""


class Supervisord:
    """One supervisord child with its config in ``root``; `ctl` runs supervisorctl on it."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.conf = root / "supervisord.conf"
        (root / "conf.d").mkdir()
        (root / "childlogs").mkdir()
        self.conf.write_text(
            f"[unix_http_server]\nfile={root}/supervisor.sock\nchmod=0700\n\n"
            f"[supervisord]\nlogfile={root}/supervisord.log\npidfile={root}/supervisord.pid\n"
            f"childlogdir={root}/childlogs\nnodaemon=true\n\n"
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
            f"[supervisorctl]\nserverurl=unix://{root}/supervisor.sock\n\n"
            f"[include]\nfiles = {root}/conf.d/*.conf\n"
        )
        self.binary = tool("supervisord", "pip install supervisor: the test extra")
        self.ctl_binary = tool("supervisorctl", "pip install supervisor: the test extra")
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for("supervisord's socket", lambda: self.ctl("pid").returncode == 0, 30)

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.ctl_binary, "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )

    def pids(self) -> dict[str, int]:
        """Each worker's name and pid (0 while it is not running)."""
        found = {}
        for line in self.ctl("status").stdout.splitlines():
            if line.startswith("conveyor:"):
                pid = re.search(r" RUNNING +pid (\d+),", line)
                found[line.split()[0]] = int(pid.group(1)) if pid else 0
        return found

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def root() -> Iterator[Path]:
    # Short (a unix socket's path is at most 107 bytes); removed with everything in it.
    with tempfile.TemporaryDirectory(prefix="cv-sd-") as path:
        yield Path(path)


def _export(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    user = getpass.getuser()
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "conveyor",
            "export",
            "supervisord",
            "alpha",
            "beta",
            "--app",
            "deploy_app:app",
            "--venv",
            sys.prefix,
            "--workdir",
            str(workdir),
            "--user",
            user,
            *args,
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    # supervisorctl as `pip install supervisor` put it: beside this Python
    path = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env | {"DEPLOY_LEDGER": str(root / "ledger.txt"), "PATH": path}


def test_supervisord_runs_the_exported_pools(root: Path) -> None:
    # Given an app, its pools, and supervisord with CONVEYOR_URL in its environment
    workdir = root / ODD_DIR
    make_app(workdir)
    (workdir / "conveyor.toml").write_text(POOLS)
    env = _env(root) | {"CONVEYOR_URL": f"sqlite:///{root}/conveyor.db"}
    supervisord = Supervisord(root, env)
    supervisord.start()
    try:
        _story(supervisord, workdir, env, root / "ledger.txt")
    finally:
        pids = [pid for pid in supervisord.pids().values() if pid]
        supervisord.stop()
        for pid in pids:  # never leave a worker behind, even when the story failed
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def _story(supervisord: Supervisord, workdir: Path, env: dict[str, str], path: Path) -> None:
    # When 50 jobs wait, 10 for the recycling pool, and `export --install` puts the file in
    # supervisord (after a --dry-run that changes nothing)
    enqueue(workdir, env, *(f"{n}:{'alpha' if n % 5 == 0 else 'beta'}:0" for n in range(50)))
    install = ("--install", "--conf-dir", str(supervisord.root / "conf.d"))
    install += ("--ctl-config", str(supervisord.conf))
    dry = _export(workdir, env, *install, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"write {supervisord.root}/conf.d/conveyor.conf" in dry.stdout
    assert "update conveyor" in dry.stdout
    assert not (supervisord.root / "conf.d" / "conveyor.conf").exists()
    done = _export(workdir, env, *install)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "conveyor: added process group" in done.stdout
    # Then every job runs exactly once, across both pools ...
    wait_for("50 jobs in the ledger", lambda: len(ledger(path)) >= 50)
    rows = ledger(path)
    assert sorted(n for n, _ in rows) == list(range(50))
    # ... the recycling pool went through many processes without ever going FATAL ...
    alpha_pids = {pid for n, pid in rows if n % 5 == 0}
    assert len(alpha_pids) >= 5
    status = supervisord.ctl("status").stdout
    assert "FATAL" not in status and "BACKOFF" not in status, status
    # ... and the odd directory reached the workers intact.
    beta = supervisord.pids()["conveyor:conveyor-beta_00"]
    assert Path(f"/proc/{beta}/cwd").resolve() == workdir.resolve()

    # When a worker is killed with SIGKILL, supervisord replaces it
    os.kill(beta, signal.SIGKILL)
    wait_for(
        "a new beta worker",
        lambda: supervisord.pids()["conveyor:conveyor-beta_00"] not in (0, beta),
    )

    # When a slow job runs during the documented rolling restart
    assert ROLLING in DOCS.read_text()
    enqueue(workdir, env, "100:beta:3")
    wait_for("the slow job to start", lambda: Path(f"{path}.started-100").exists())
    before = supervisord.pids()
    ctl = f"{shlex.quote(supervisord.ctl_binary)} -c {shlex.quote(str(supervisord.conf))}"
    rolling = ROLLING.replace("supervisorctl", ctl)
    subprocess.run(["bash", "-c", rolling], check=True, timeout=180, capture_output=True)
    # Then it was not cut off: it finished, once, and every worker is a new process
    assert Counter(n for n, _ in ledger(path))[100] == 1
    after = supervisord.pids()
    assert all(after[name] != pid for name, pid in before.items()), (before, after)

    # When the workers are stopped, no worker process is left
    running = [pid for pid in supervisord.pids().values() if pid]
    supervisord.ctl("stop", "conveyor:*")
    assert not [pid for pid in running if alive(pid)]


def test_supervisord_refuses_the_file_without_conveyor_url(root: Path) -> None:
    # Given the exported file and a supervisord whose environment lacks CONVEYOR_URL
    workdir = root / "app"
    make_app(workdir)
    (workdir / "conveyor.toml").write_text(POOLS)
    env = _env(root)
    supervisord = Supervisord(root, env)
    done = _export(workdir, env, "--out", str(root / "conf.d"))
    assert done.returncode == 0, done.stderr
    # When supervisord starts, it refuses the file instead of starting workers on a store
    # nobody uses (the old file started them on ./conveyor.db)
    run = subprocess.run(
        [supervisord.binary, "-c", str(supervisord.conf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode != 0
    assert "ENV_CONVEYOR_URL" in run.stdout + run.stderr
    assert not (workdir / "conveyor.db").exists()
