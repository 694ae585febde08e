"""The loop watchdog: a thread that notices when the worker's event loop stops turning.

An ``async def`` task that blocks (``time.sleep``, a blocking client, a long computation)
stalls the whole loop: no other job runs, timeouts cannot fire, signals are not handled, and
the heartbeat thread keeps the job's lease alive, so no other worker recovers it. The loop
bumps a timestamp every ``interval``; this thread watches it:

* after ``warn_after`` seconds without a bump it logs the job that holds the loop (the asyncio
  task running now) and the loop thread's stack, once per stall, and a line when it ends;
* once the stall outlasts that job's timeout plus ``grace`` it ends the process with
  `EXIT_LOOP_BLOCKED`. Leases are not released: they expire, which fences the stuck run, and
  another worker recovers the jobs, while the supervisor starts a new process;
* a stop signal that the blocked loop cannot handle is honoured here: the process exits after
  the shutdown grace period (a second signal: at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.worker.state import EXIT_FORCED, EXIT_LOOP_BLOCKED

if TYPE_CHECKING:
    from conveyor.worker.worker import Worker

log = logging.getLogger("conveyor.worker")


@dataclass(slots=True, frozen=True)
class Blocker:
    """What holds the loop: a job (id, task, timeout) or some other code (``job_id`` None)."""

    label: str
    timeout: float
    job_id: str | None = None


class LoopWatchdog(threading.Thread):
    """Watches one event loop from a thread of its own; see the module docstring."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        blocker: Callable[[asyncio.Task[object] | None], Blocker],
        warn_after: float,
        grace: float,
        shutdown_grace: float,
        signals: Sequence[float] = (),
        interval: float = 0.25,
        exit: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(name="conveyor-watchdog", daemon=True)
        self.loop = loop
        self.blocker = blocker
        self.warn_after = warn_after
        self.grace = grace
        self.shutdown_grace = shutdown_grace
        self.interval = min(interval, warn_after / 4)
        self._exit = exit or _exit_now
        self._halt = threading.Event()
        self._loop_thread = threading.get_ident()
        self.last_tick = time.monotonic()
        #: Monotonic times of the stop signals received (`SignalTrap.times`, written by the
        #: signal handler even while the loop is stuck).
        self.signals = signals
        #: Stalls seen since start, and the longest one in seconds (for stats and tests).
        self.stalls = 0
        self.longest = 0.0
        self._current = 0.0
        self._handle: asyncio.TimerHandle | None = None

    # -- on the loop -------------------------------------------------------------------
    def start(self) -> None:
        """Start ticking on the running loop (call from the loop's thread) and watching."""
        self._loop_thread = threading.get_ident()
        self._tick()
        super().start()

    def _tick(self) -> None:
        self.last_tick = time.monotonic()
        if not self._halt.is_set():
            self._handle = self.loop.call_later(self.interval, self._tick)

    def stop(self) -> None:
        """Stop watching (the worker is finishing)."""
        self._halt.set()
        if self._handle is not None:
            self._handle.cancel()

    # -- on the watchdog's thread ------------------------------------------------------
    def run(self) -> None:
        warned: Blocker | None = None
        while not self._halt.wait(self.interval):
            now = time.monotonic()
            stalled = now - self.last_tick
            if stalled < self.warn_after:
                if warned is not None:
                    log.warning(
                        "the event loop runs again; %s blocked it for about %.1fs",
                        warned.label,
                        self._current,
                    )
                    warned = None
                continue
            self._current = stalled
            self.longest = max(self.longest, stalled)
            if warned is None:
                warned = self._blocker()
                self.stalls += 1
                self._warn(warned, stalled)
            verdict = self._verdict(warned, stalled, now)
            if verdict is not None:
                code, why = verdict
                log.critical("%s; exiting with code %d", why, code)
                self._exit(code)
                return

    def _blocker(self) -> Blocker:
        try:
            task = asyncio.current_task(self.loop)
        except Exception:  # noqa: BLE001 - no task is running: some callback holds the loop
            task = None
        return self.blocker(task)

    def _warn(self, blocker: Blocker, stalled: float) -> None:
        frame = sys._current_frames().get(self._loop_thread)
        stack = "".join(traceback.format_stack(frame, limit=25)) if frame else "(no stack)"
        log.error(
            "the event loop has been blocked for %.1fs by %s: no other job, timeout or signal "
            "is handled meanwhile. Do not block inside `async def` tasks (time.sleep, "
            "blocking clients): use a plain `def` task, which runs in a thread. The worker "
            "exits if the loop stays blocked past %.0fs. The loop is at:\n%s",
            stalled,
            blocker.label,
            blocker.timeout + self.grace,
            stack.rstrip(),
        )

    def _verdict(self, blocker: Blocker, stalled: float, now: float) -> tuple[int, str] | None:
        if len(self.signals) >= 2:
            return EXIT_FORCED, (
                f"a second stop signal came while {blocker.label} blocks the event loop"
            )
        if self.signals and now - max(self.signals[0], self.last_tick) >= self.shutdown_grace:
            return EXIT_LOOP_BLOCKED, (
                f"a stop signal came {now - self.signals[0]:.1f}s ago but {blocker.label} "
                f"still blocks the event loop (shutdown grace {self.shutdown_grace:g}s); its "
                "lease is left to expire so another worker recovers it"
            )
        if stalled >= blocker.timeout + self.grace:
            return EXIT_LOOP_BLOCKED, (
                f"{blocker.label} has blocked the event loop for {stalled:.1f}s, past its "
                f"{blocker.timeout:g}s timeout plus {self.grace:g}s; the leases of this "
                "worker's jobs are left to expire so other workers recover them, and the "
                "supervisor starts a new worker"
            )
        return None


def watch(worker: Worker, signals: Sequence[float]) -> LoopWatchdog:
    """Start a watchdog on the running loop for ``worker`` (call from the loop's thread);
    ``signals`` are the times of the stop signals it receives."""
    s = worker.app.settings

    def blocker(task: asyncio.Task[object] | None) -> Blocker:
        running = dict(worker._running)  # copied in one step: this runs on another thread
        name = task.get_name() if task is not None else ""
        run = running.get(name[4:]) if name.startswith("job-") else None
        if run is not None:
            return Blocker(f"job {run.job.id} ({run.job.task})", run.job.timeout, run.job.id)
        timeout = max((r.job.timeout for r in running.values()), default=0.0)
        what = f"the asyncio task {name!r}" if name else "code outside any asyncio task"
        return Blocker(what, max(timeout, s.job_timeout))

    # Only a worker that owns its process (the CLI's, which handles signals) may end it;
    # one run inside an application or a test only logs the stall.
    dog = LoopWatchdog(
        asyncio.get_running_loop(),
        blocker=blocker,
        warn_after=s.worker_loop_warn,
        grace=s.worker_loop_grace,
        shutdown_grace=worker.grace_period,
        signals=signals,
        exit=None if worker.handle_signals else _log_only,
    )
    dog.start()
    return dog


def _log_only(code: int) -> None:
    log.critical(
        "this worker does not own its process (it was not started by `conveyor worker`), so "
        "it does not exit with code %d: restart the process yourself",
        code,
    )


def _exit_now(code: int) -> None:
    # The loop's thread is stuck, so a normal exit (which joins threads and runs atexit
    # hooks on that thread) could hang: flush what is written, then leave at once. A flush
    # that waits on a lock the stuck thread holds must not keep the process alive either.
    threading.Timer(2.0, os._exit, (code,)).start()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # nothing left to report to
            stream.flush()
    os._exit(code)
