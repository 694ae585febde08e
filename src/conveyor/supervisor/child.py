"""One supervised worker process: how it is started, signalled and judged when it exits.

Children start in their own session, so a Ctrl-C at the terminal reaches only the
supervisor (which then stops them gracefully, once). On Linux each child also asks the
kernel for SIGTERM when the supervisor dies (``PR_SET_PDEATHSIG``); everywhere, the
``--parent-pid`` flag makes the worker watch its parent and stop when it changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from conveyor.supervisor.config import Pool
from conveyor.worker.state import EXIT_LOOP_BLOCKED, EXIT_STUCK_THREAD

PR_SET_PDEATHSIG = 1


def _pdeathsig() -> Callable[[], None] | None:
    """A ``preexec_fn`` that sets PR_SET_PDEATHSIG to SIGTERM, or ``None`` off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        # Only async-signal-safe work here: the library was looked up before the fork.
        # The supervisor may run metrics threads (`--metrics-port`): Python's allocator is
        # guarded by the GIL, which the forking thread holds, and glibc's malloc resets its
        # locks in the child, so a lock held by another thread cannot hang this call.
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)

    return preexec


_PREEXEC = _pdeathsig()


def worker_command(
    pool: Pool,
    app_spec: str,
    log_level: str | None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line of one worker process of ``pool`` (``extra``: more flags).

    Without ``log_level`` the worker reads ``LOG_LEVEL`` from the environment it inherits.
    The backend URL is never on it (`ps` shows command lines to every user of the host):
    `url_env` hands it over in the environment instead.
    """
    command = [sys.executable, "-m", "conveyor", "worker", "--app", app_spec]
    command += [*pool.worker_args(), *extra, "--parent-pid", str(os.getpid())]
    return command if log_level is None else [*command, "--log-level", log_level]


def url_env(url: str | None) -> dict[str, str]:
    """The environment that gives a worker ``url`` (``CONVEYOR_URL``; nothing for ``None``).

    ``/proc/PID/environ`` is readable only by the process's owner and root, unlike its
    command line.
    """
    return {"CONVEYOR_URL": url} if url else {}


@dataclass(slots=True)
class Child:
    """A running (or finished) worker process in one slot of a pool."""

    pool: str
    slot: int
    proc: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)
    term_sent: float | None = None

    @classmethod
    def spawn(cls, pool: Pool, slot: int, command: list[str], env: dict[str, str]) -> Child:
        """Start one worker process for ``pool``; its output goes to ours."""
        proc = subprocess.Popen(
            command,
            env={**env, **pool.worker_env()},
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_PREEXEC,  # noqa: PLW1509 - see _pdeathsig
        )
        return cls(pool.name, slot, proc)

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def poll(self) -> int | None:
        """The exit code once the process has exited (negative: killed by that signal)."""
        return self.proc.poll()

    def terminate(self) -> None:
        """Ask the worker to stop gracefully (SIGTERM), once."""
        if self.term_sent is None:
            self.term_sent = time.monotonic()
            self.signal(signal.SIGTERM)

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to this process only, if it still runs."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    def uptime(self) -> float:
        """Seconds since it started."""
        return time.monotonic() - self.started


#: What a worker's own non-zero exit codes mean (`conveyor.worker.state`, docs/workers.md).
_WORKER_EXITS = {
    EXIT_STUCK_THREAD: "a def task overran its timeout; its thread could not be stopped",
    EXIT_LOOP_BLOCKED: "an async task blocked the event loop",
}


def describe_exit(code: int) -> str:
    """``exit code 2``, ``exit code 4 (an async task blocked the event loop)`` or
    ``killed by SIGKILL``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    why = _WORKER_EXITS.get(code)
    return f"exit code {code}" + (f" ({why})" if why else "")


def backoff(crashes: int, base: float, cap: float) -> float:
    """Seconds to wait before restarting after ``crashes`` crashes in a row: base · 2^(n-1),
    capped."""
    if crashes <= 0:
        return 0.0
    return float(min(cap, base * 2 ** min(crashes - 1, 30)))
