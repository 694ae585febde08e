"""A ``conveyor run`` supervisor process for acceptance tests, on a `Cluster`'s store.

Every worker process the supervisor reports is remembered (as a `psutil.Process`, which
guards against pid reuse), so teardown kills exactly the processes this test caused to
exist, even after the supervisor itself was SIGKILLed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from typing import Any

import psutil

from .harness import APP_REF, Cluster, wait_for


class Supervised:
    """One ``python -m conveyor run ...`` process and the workers it started."""

    def __init__(self, cluster: Cluster, *words: str, env: dict[str, str] | None = None) -> None:
        self.cluster = cluster
        self.run_dir = cluster.dir / "run"
        self.log_path = cluster.dir / "supervisor.log"
        self._log = self.log_path.open("wb")
        self.env = {**cluster.env, **(env or {})}
        command = [
            sys.executable,
            "-m",
            "conveyor",
            "run",
            *words,
            "--app",
            APP_REF,
            "--run-dir",
            str(self.run_dir),
            "--backoff",
            "0.2",
            "--backoff-cap",
            "2",
        ]
        self.proc = subprocess.Popen(
            command,
            env=self.env,
            cwd=cluster.dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.seen: dict[int, psutil.Process] = {}

    # -- reading ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any] | None:
        """The supervisor's state file, remembering every worker it names."""
        try:
            state: dict[str, Any] = json.loads((self.run_dir / "supervisor.json").read_text())
        except (FileNotFoundError, ValueError):
            return None
        for pid in self.pids(state) + list(state.get("retiring", [])):
            if pid not in self.seen:
                with contextlib.suppress(psutil.Error):
                    self.seen[pid] = psutil.Process(pid)
        return state

    @staticmethod
    def pids(state: dict[str, Any]) -> list[int]:
        """Worker pids by pool and slot order (only running slots)."""
        return [w["pid"] for p in state["pools"] for w in p["workers"] if w["pid"]]

    def wait_workers(self, count: int, timeout: float = 30) -> list[int]:
        """Wait until ``count`` workers run and each has registered in the backend."""

        def ready() -> list[int] | None:
            state = self.state()
            if state is None or len(self.pids(state)) != count:
                return None
            registered = {w.pid for w in self.cluster.workers()}
            pids = self.pids(state)
            return pids if set(pids) <= registered else None

        return wait_for(
            ready,
            timeout=timeout,
            what=f"{count} supervised workers",
            interval=0.2,
            detail=self.output_tail,
        )

    def output(self) -> str:
        """Everything the supervisor and its workers wrote."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def output_tail(self, lines: int = 60) -> str:
        """The last lines of output, for failure messages."""
        tail = "\n".join(self.output().splitlines()[-lines:])
        return f"--- supervisor {self.proc.pid} output (last {lines} lines) ---\n{tail}"

    def control(self, *words: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``conveyor run WORDS --run-dir ...`` as another process, like another shell."""
        return subprocess.run(
            [sys.executable, "-m", "conveyor", "run", *words, "--run-dir", str(self.run_dir)],
            env=self.env,
            cwd=self.cluster.dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # -- acting ----------------------------------------------------------------------------
    def send(self, sig: signal.Signals) -> None:
        """Send one signal to the supervisor only."""
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float) -> int:
        """Wait for the supervisor to exit; its exit code."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"supervisor still running after {timeout:g}s\n{self.output_tail()}"
            ) from None

    def close(self) -> None:
        """SIGKILL the supervisor and every worker it was seen running, if still alive."""
        self.state()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for proc in self.seen.values():
            with contextlib.suppress(psutil.Error):
                if proc.is_running():
                    proc.kill()
        self._log.close()


def gone(proc: psutil.Process) -> bool:
    """Whether a process has exited (a zombie waiting for its new parent counts)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True
