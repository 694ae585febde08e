"""Worker processes for a measurement, shared by the Redis and PostgreSQL drivers.

Free of any driver import, so each peer's own virtualenv can load it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class Workers:
    """Worker processes, each in its own process group, stopped on exit. Their output goes
    to temporary files (a pipe nobody reads would block a chatty worker)."""

    def __init__(self, command: list[str], procs: int) -> None:
        here = Path(sys.executable).parent
        if command[0] != sys.executable and Path(command[0]).parent == here:
            # A console script of this virtualenv runs through its interpreter: a copied
            # virtualenv keeps the old path in its scripts' first line.
            command = [sys.executable, *command]
        self.logs = [tempfile.TemporaryFile() for _ in range(procs)]  # noqa: SIM115 - closed in stop()
        self.procs = [
            subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for log in self.logs
        ]

    def check(self) -> None:
        """Fail if a worker has exited."""
        for proc, log in zip(self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                log.seek(0)
                out = log.read().decode(errors="replace")
                raise RuntimeError(f"a worker exited with {proc.returncode}: {out[-1500:]}")

    def stop(self) -> None:
        """SIGTERM each group, then SIGKILL what is left after 3 s (the measurement is over)."""
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            alive = [p for p in self.procs if p.poll() is None]
            for proc in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
            deadline = time.monotonic() + wait
            for proc in alive:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(max(0.1, deadline - time.monotonic()))
        for proc in self.procs:  # a worker's own children, if it left any behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for log in self.logs:
            log.close()
