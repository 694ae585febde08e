"""The run directory: how `conveyor run status`, `stop` and `restart` find a supervisor.

``<run-dir>/supervisor.lock`` is held (``flock``) for the supervisor's whole life, so two
supervisors cannot share a run directory. ``supervisor.json`` is the state the supervisor
rewrites atomically as it changes: its pid and start time, and each pool's processes.
Other shells read it and talk to the supervisor with signals: SIGTERM stops, SIGHUP
restarts workers one by one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

from conveyor.errors import ConfigError

DEFAULT_RUN_DIR = ".conveyor"
STATE = "supervisor.json"
LOCK = "supervisor.lock"


@dataclass(slots=True)
class RunDir:
    """One run directory."""

    path: Path

    @property
    def state_path(self) -> Path:
        """Where the supervisor's state is written."""
        return self.path / STATE

    # -- the supervisor's side -------------------------------------------------------------
    def acquire(self) -> IO[str]:
        """Take the run directory's lock for this process, or say who holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        handle = (self.path / LOCK).open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            state = self.read()
            who = f" (pid {state['pid']})" if state else ""
            raise ConfigError(
                f"a supervisor is already running in {self.path}{who}: stop it with "
                f"`conveyor run stop --run-dir {self.path}` or pick another --run-dir"
            ) from None
        return handle

    def write(self, state: dict[str, Any]) -> None:
        """Replace the state file atomically."""
        tmp = self.path / f".{STATE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_path)

    def clear(self) -> None:
        """Remove the state file (the supervisor has stopped)."""
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()

    # -- other shells ----------------------------------------------------------------------
    def read(self) -> dict[str, Any] | None:
        """The last state written, or ``None``."""
        try:
            data: dict[str, Any] = json.loads(self.state_path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return data

    def live(self) -> dict[str, Any] | None:
        """The state of the supervisor running here, or ``None`` (a stale file is removed)."""
        state = self.read()
        if state is None:
            return None
        if not _same_process(int(state["pid"]), float(state.get("create_time", 0))):
            self.clear()
            return None
        return state

    def signal(self, sig: signal.Signals) -> dict[str, Any] | None:
        """Send ``sig`` to the live supervisor; its state, or ``None`` if none runs."""
        state = self.live()
        if state is not None:
            os.kill(int(state["pid"]), sig)
        return state

    def wait_gone(self, pid: int, timeout: float) -> bool:
        """Wait until process ``pid`` has exited; ``False`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not psutil.pid_exists(pid) or _zombie(pid):
                return True
            time.sleep(0.1)
        return False


def process_create_time() -> float:
    """This process's start time as the OS reports it (guards against pid reuse)."""
    return psutil.Process().create_time()


def _same_process(pid: int, create_time: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - create_time) < 1.0 and not _zombie(pid)
    except psutil.Error:
        return False


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
