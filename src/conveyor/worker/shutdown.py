"""Stopping: the first SIGTERM or SIGINT stops gracefully, a second one stops now.

`drain` is the graceful part: running jobs get the grace period to finish, then the rest
are cancelled (and released, or left to their lease when a thread still runs them).
SIGUSR2 prints what the worker is doing (every asyncio task's and thread's stack) to
stderr without stopping it: ``kill -USR2 PID`` on a worker that seems stuck.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from conveyor.lifecycle import SignalTrap

if TYPE_CHECKING:
    from conveyor.worker.state import Running
    from conveyor.worker.worker import Worker

log = logging.getLogger("conveyor.worker")


class SignalHandlers:
    """The worker's signals: SIGTERM and SIGINT through a `SignalTrap` (whose record of them
    loop watchdog, so a worker whose loop is stuck still stops), SIGUSR2 on the loop."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.loop = asyncio.get_running_loop()
        self.trap = SignalTrap(self._handle, loop=self.loop)
        self.loop.add_signal_handler(signal.SIGUSR2, dump_stacks)

    def _handle(self, sig: signal.Signals) -> None:
        if self.worker.stop_reason is None:
            log.info("received %s: finishing running jobs (send again to stop now)", sig.name)
            self.worker.stop(f"received {sig.name}")
        else:
            log.warning("received %s again: releasing running jobs and exiting now", sig.name)
            self.worker.force_stop()

    def remove(self) -> None:
        """Restore the signal handling that was there before."""
        self.trap.remove()
        self.loop.remove_signal_handler(signal.SIGUSR2)


def dump_stacks() -> None:
    """Print every asyncio task's stack and every thread's stack to stderr."""
    tasks = asyncio.all_tasks()
    print(f"--- {len(tasks)} asyncio task(s) ---", file=sys.stderr)
    for task in tasks:
        task.print_stack(limit=20, file=sys.stderr)
    print("--- threads ---", file=sys.stderr)
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.flush()


async def wait_all_or(
    tasks: set[asyncio.Task[None]], force: asyncio.Future[Any], timeout: float
) -> None:
    """Wait until every task is done, ``force`` fires, or ``timeout`` passes."""
    all_done = asyncio.ensure_future(asyncio.wait(tasks))
    await asyncio.wait({all_done, force}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    all_done.cancel()


async def drain(
    running: dict[str, Running],
    force: asyncio.Event,
    grace: float,
    cancel: Callable[[list[str], str], None],
) -> None:
    """Let the ``running`` jobs finish for up to ``grace`` seconds, then cancel the rest.

    ``force`` (a second signal) cuts the wait short. ``cancel(job_ids, "shutdown")`` ends
    the unfinished ones; their tasks then settle them (`Released`, or `Abandoned` when a
    thread still runs one), for up to ten seconds more.
    """
    if running and not force.is_set():
        log.info("waiting up to %gs for %d running job(s)", grace, len(running))
        forced = asyncio.ensure_future(force.wait())
        await wait_all_or({r.task for r in running.values()}, forced, grace)
        forced.cancel()
    if running:
        log.warning("releasing %d unfinished job(s) back to ready", len(running))
        cancel(list(running), "shutdown")
        await asyncio.wait({r.task for r in running.values()}, timeout=10)
