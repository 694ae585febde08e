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
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.deploy_support import alive, enqueue, ledger, make_app, tool, wait_for

pytestmark = pytest.mark.timeout(240)

DOCS = Path(__file__).parents[2] / "docs" / "deployment.md"
#: docs/deployment.md's rolling restart under supervisord, run here with `-c CONFIG`.
ROLLING = (
    "sudo supervisorctl status 'conveyor:*' | awk '{print $1}' "
    "| xargs -n1 sudo supervisorctl restart"
)
#: Seconds the long job keeps running after its worker got SIGTERM in the rolling restart.
HOLD = 5
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

    def state(self, name: str) -> str:
        """``name``'s state as supervisorctl shows it (RUNNING, STOPPING...)."""
        words = self.ctl("status", name).stdout.split()
        return words[1] if len(words) > 1 else ""

    def log(self) -> str:
        """supervisord's own log."""
        return (self.root / "supervisord.log").read_text()

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
        children = [int(f.read_text() or 0) for f in root.glob("ledger.txt.child-*")]
        for pid in pids + children:  # never leave a process behind, even on a failure
            if pid and alive(pid):
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
    # ... the recycling pool went through many processes, each exit a clean one to
    # supervisord (its exit code in exitcodes=, never a start that failed: no BACKOFF, no
    # FATAL, at any moment) ...
    alpha_pids = {pid for n, pid in rows if n % 5 == 0}
    assert len(alpha_pids) >= 5
    log = supervisord.log()
    assert "exit status 0; expected" in log
    for bad in ("not expected", "BACKOFF", "FATAL"):
        assert bad not in log, log
    # ... and the odd directory reached the workers intact.
    beta = supervisord.pids()["conveyor:conveyor-beta_00"]
    assert Path(f"/proc/{beta}/cwd").resolve() == workdir.resolve()

    # When a worker is killed with SIGKILL, supervisord replaces it
    os.kill(beta, signal.SIGKILL)
    wait_for(
        "a new beta worker",
        lambda: supervisord.pids()["conveyor:conveyor-beta_00"] not in (0, beta),
    )

    _rolling_restart(supervisord, workdir, env, path)

    # When the workers are stopped while a job waits on a child process of its own
    enqueue(workdir, env, "200:beta:spawn")
    child_file = Path(f"{path}.child-200")
    wait_for("the job's child process", lambda: child_file.exists() and child_file.read_text())
    child = int(child_file.read_text())
    running = [pid for pid in supervisord.pids().values() if pid]
    stopped = supervisord.ctl("stop", "conveyor:*")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    # Then no worker process is left, nor the job's child (the whole group got SIGTERM)
    assert not [pid for pid in running if alive(pid)]
    assert not alive(child)


def _rolling_restart(
    supervisord: Supervisord, workdir: Path, env: dict[str, str], path: Path
) -> None:
    # Given a long job running on one of the workers
    assert ROLLING in DOCS.read_text()
    enqueue(workdir, env, "100:beta:120")
    started = Path(f"{path}.started-100")
    wait_for("the long job to start", lambda: started.exists() and started.read_text())
    runner = int(started.read_text())
    before = supervisord.pids()
    [name] = [name for name, pid in before.items() if pid == runner]
    # When the documented rolling restart runs
    ctl = f"{shlex.quote(supervisord.ctl_binary)} -c {shlex.quote(str(supervisord.conf))}"
    rolling = ROLLING.replace("sudo supervisorctl", ctl)
    with subprocess.Popen(["bash", "-c", rolling], stdout=subprocess.PIPE) as roll:
        try:
            # Then the job's worker, asked to stop, keeps running it: a deploy in the middle
            # of a long job (HOLD seconds here) neither kills nor repeats it
            wait_for(f"{name} to be stopping", lambda: supervisord.state(name) == "STOPPING", 150)
            time.sleep(HOLD)
            assert alive(runner) and supervisord.state(name) == "STOPPING"
            Path(f"{path}.go-100").touch()
            output = roll.communicate(timeout=180)[0].decode()
        finally:
            Path(f"{path}.go-100").touch()
            if roll.poll() is None:
                roll.kill()
        assert roll.returncode == 0, output
    assert [pid for n, pid in ledger(path) if n == 100] == [runner]
    # ... and every worker is a new process
    after = supervisord.pids()
    assert all(after[name] != pid for name, pid in before.items()), (before, after)


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


def test_install_takes_back_a_file_supervisord_cannot_use(root: Path) -> None:
    # Given a running supervisord, without CONVEYOR_URL, that runs another program
    workdir = root / "app"
    make_app(workdir)
    (workdir / "conveyor.toml").write_text(POOLS)
    env = _env(root)
    supervisord = Supervisord(root, env)
    (root / "conf.d" / "other.conf").write_text("[program:other]\ncommand=sleep 300\n")
    supervisord.start()
    try:
        wait_for("the other program", lambda: supervisord.state("other") == "RUNNING", 30)
        ctl = ("--ctl-config", str(supervisord.conf))
        # When --install puts the file there
        done = _export(workdir, env, "--install", "--conf-dir", str(root / "conf.d"), *ctl)
        # Then it fails in one line saying why and what to do, and the file is gone again,
        # so supervisord still rereads and runs everything else
        assert done.returncode == 2, done.stdout + done.stderr
        [line] = done.stderr.strip().splitlines()
        assert "supervisord has no CONVEYOR_URL in its environment" in line
        assert "EnvironmentFile=/etc/conveyor/conveyor.env" in line
        assert not (root / "conf.d" / "conveyor.conf").exists()
        reread = supervisord.ctl("reread")
        assert reread.returncode == 0, reread.stdout + reread.stderr
        assert supervisord.state("other") == "RUNNING"
        # When --conf-dir names a directory supervisord does not include
        elsewhere = root / "elsewhere"
        elsewhere.mkdir()
        done = _export(workdir, env, "--install", "--conf-dir", str(elsewhere), *ctl)
        # Then the export says so (that file is not read), and takes it back
        assert done.returncode == 2, done.stdout + done.stderr
        assert "supervisord does not include" in done.stderr
        assert not (elsewhere / "conveyor.conf").exists()
    finally:
        supervisord.stop()
