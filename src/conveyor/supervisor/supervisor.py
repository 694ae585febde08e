"""The supervisor: the parent process of ``conveyor run`` that keeps pools running.

* Each pool has ``processes`` slots; each slot holds one ``conveyor worker`` process.
* A worker that exits with code 0 recycled itself (max jobs, memory, max time): it is
  replaced at once. Any other exit is a crash: the slot restarts after an exponential
  back-off (``backoff_base`` doubling up to ``backoff_cap``), and from ``crash_loop``
  crashes in a row on, each restart logs a crash-loop error. A worker that ran
  ``stable_after`` seconds before crashing starts the count afresh.
* SIGHUP restarts the workers one slot at a time: start the new process, let it warm up,
  SIGTERM the old one, wait for it to finish its running jobs, then the next slot.
* SIGTERM or SIGINT stops: every worker gets SIGTERM (finish running jobs within its grace
  period), leftovers get SIGKILL after the longest grace period plus a margin. A second
  signal is forwarded (the workers then release their jobs and exit at once).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from conveyor.lifecycle import STOP_SIGNALS, SignalTrap
from conveyor.supervisor.child import Child, backoff, describe_exit
from conveyor.supervisor.config import Pool
from conveyor.supervisor.rundir import RunDir, process_create_time

log = logging.getLogger("conveyor.supervisor")

#: Seconds past the grace period before a stopping worker is killed.
KILL_MARGIN = 10.0
TICK = 0.1


@dataclass(slots=True)
class Slot:
    """One place for a worker process in a pool."""

    pool: Pool
    index: int
    child: Child | None = None
    crashes: int = 0
    restarts: int = 0
    #: Exits since start: clean ones (recycled) and the others (crashed).
    recycled: int = 0
    crashed: int = 0
    next_start: float = 0.0
    last_exit: str | None = None

    @property
    def label(self) -> str:
        """``mail#1``, for logs."""
        return f"{self.pool.name}#{self.index}"


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """How one pool is doing, for metrics and probes."""

    processes: int
    running: int
    recycled: int
    crashed: int


class Companion(Protocol):
    """Something that runs beside the supervisor's loop (the metrics endpoint)."""

    def start(self) -> None:
        """Called once the run directory is ours, before any worker starts."""
        ...

    def stop(self) -> None:
        """Called once every worker has stopped."""
        ...


@dataclass(slots=True)
class _Step:
    """The slot a rolling restart is replacing now."""

    slot: Slot
    new: Child
    old: Child | None = None


@dataclass
class Supervisor:
    """Starts, watches, restarts and stops the worker processes of some pools."""

    pools: list[Pool]
    #: The worker command line for a pool.
    command: Callable[[Pool], list[str]]
    env: dict[str, str]
    run_dir: RunDir
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    crash_loop: int = 5
    stable_after: float = 30.0
    warmup: float = 1.0
    info: dict[str, Any] = field(default_factory=dict)
    #: Started and stopped with the supervisor (`conveyor run --metrics-port`).
    companion: Companion | None = None

    def __post_init__(self) -> None:
        self.slots = [Slot(p, i) for p in self.pools for i in range(p.processes)]
        self.retiring: list[Child] = []
        self._roll: deque[Slot] = deque()
        self._step: _Step | None = None
        self._stops = 0
        self._hup = False
        self._started_at = time.time()
        self._last_state = ""
        self._create_time = process_create_time()
        self._started_mono = time.monotonic()
        #: ``time.monotonic()`` of the loop's last turn (``/livez``).
        self.loop_tick = time.monotonic()

    # -- running ---------------------------------------------------------------------------
    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT; return the exit code (0)."""
        lock = self.run_dir.acquire()
        # The handler only counts: the loop below acts on the counts at its next turn.
        trap = SignalTrap(self._on_signal, (*STOP_SIGNALS, signal.SIGHUP))
        try:
            if self.companion is not None:
                self.companion.start()
            log.info(
                "supervisor %d started: %s",
                _pid(),
                ", ".join(
                    f"{p.name} x{p.processes} (queues {','.join(p.queues or ['*'])})"
                    for p in self.pools
                ),
            )
            while self._stops == 0:
                self._tick()
                self._save()
                time.sleep(TICK)
            self._shutdown()
        finally:
            if self.companion is not None:
                self.companion.stop()
            trap.remove()
            self.run_dir.clear()
            lock.close()
        log.info("supervisor %d stopped", _pid())
        return 0

    def _on_signal(self, signum: signal.Signals) -> None:
        if signum == signal.SIGHUP:
            self._hup = True
            return
        self._stops += 1

    def _tick(self) -> None:
        now = self.loop_tick = time.monotonic()
        if self._hup:
            self._hup = False
            log.info("SIGHUP: restarting %d worker(s) one at a time", len(self.slots))
            self._roll.extend(s for s in self.slots if s not in self._roll)
        for slot in self.slots:
            if slot.child is not None and (code := slot.child.poll()) is not None:
                self._exited(slot, code, now)
            if slot.child is None and now >= slot.next_start:
                self._start(slot)
        self._advance_roll()
        self._reap_retiring(now)

    def _start(self, slot: Slot) -> Child:
        child = Child.spawn(slot.pool, slot.index, self.command(slot.pool), self.env)
        slot.child = child
        log.info("started worker pid %d for %s", child.pid, slot.label)
        return child

    def _exited(self, slot: Slot, code: int, now: float) -> None:
        assert slot.child is not None
        child, slot.child = slot.child, None
        slot.restarts += 1
        slot.last_exit = describe_exit(code)
        if code == 0:
            slot.recycled += 1
            slot.crashes = 0
            slot.next_start = now
            log.info(
                "worker pid %d (%s) exited cleanly after %.1fs (recycled); replacing it",
                child.pid,
                slot.label,
                child.uptime(),
            )
            return
        if child.uptime() >= self.stable_after:
            slot.crashes = 0
        slot.crashes += 1
        slot.crashed += 1
        delay = backoff(slot.crashes, self.backoff_base, self.backoff_cap)
        slot.next_start = now + delay
        log.warning(
            "worker pid %d (%s) died: %s after %.1fs; restarting in %.1fs",
            child.pid,
            slot.label,
            slot.last_exit,
            child.uptime(),
            delay,
        )
        if slot.crashes >= self.crash_loop:
            log.error(
                "crash loop: %s crashed %d times in a row (last: %s); restarts back off up "
                "to %gs. Check the worker's output above.",
                slot.label,
                slot.crashes,
                slot.last_exit,
                self.backoff_cap,
            )

    # -- rolling restart -------------------------------------------------------------------
    def _advance_roll(self) -> None:
        step = self._step
        if step is None:
            while self._roll and step is None:
                slot = self._roll.popleft()
                if slot.child is not None:  # a slot waiting to restart gets new code anyway
                    step = self._step = _Step(
                        slot, Child.spawn(slot.pool, slot.index, self.command(slot.pool), self.env)
                    )
                    log.info("rolling restart: started pid %d for %s", step.new.pid, slot.label)
            return
        if step.old is None:
            code = step.new.poll()
            if code is not None:
                log.error(
                    "rolling restart aborted: the new worker for %s exited (%s) while "
                    "warming up; the running workers were kept",
                    step.slot.label,
                    describe_exit(code),
                )
                self._step = None
                self._roll.clear()
            elif step.new.uptime() >= self.warmup:
                old, step.slot.child = step.slot.child, step.new
                if old is not None:
                    old.terminate()
                    self.retiring.append(old)
                    step.old = old
                    log.info("rolling restart: stopping pid %d (%s)", old.pid, step.slot.label)
                else:
                    self._step = None
        elif step.old.poll() is not None:
            log.info("rolling restart: %s done", step.slot.label)
            self._step = None
            if not self._roll:
                log.info("rolling restart complete")

    def _reap_retiring(self, now: float) -> None:
        for child in list(self.retiring):
            if child.poll() is not None:
                self.retiring.remove(child)
            elif child.term_sent is not None and now - child.term_sent > self._kill_after():
                log.warning("worker pid %d did not stop in time: SIGKILL", child.pid)
                child.signal(signal.SIGKILL)

    def _kill_after(self) -> float:
        return max((p.grace for p in self.pools), default=0.0) + KILL_MARGIN

    # -- stopping --------------------------------------------------------------------------
    def _shutdown(self) -> None:
        children = [s.child for s in self.slots if s.child is not None] + self.retiring
        if self._step is not None and self._step.new not in children:
            children.append(self._step.new)
        log.info("stopping %d worker(s) gracefully", len(children))
        for child in children:
            child.terminate()
        self._save(stopping=True)
        forwarded = 1
        deadline = time.monotonic() + self._kill_after()
        while any(c.poll() is None for c in children) and time.monotonic() < deadline:
            self.loop_tick = time.monotonic()
            if self._stops > forwarded:  # a second signal: the workers stop now
                forwarded = self._stops
                log.warning("signal again: telling workers to release their jobs and exit")
                for child in children:
                    child.signal(signal.SIGTERM)
            time.sleep(TICK)
        for child in children:
            if child.poll() is None:
                log.warning("worker pid %d did not stop in time: SIGKILL", child.pid)
                child.signal(signal.SIGKILL)
                child.proc.wait(10)

    # -- read from other threads (metrics) ----------------------------------------------
    @property
    def stopping(self) -> bool:
        """Whether a stop signal has arrived."""
        return self._stops > 0

    def uptime(self) -> float:
        """Seconds since the supervisor was created."""
        return time.monotonic() - self._started_mono

    def processes(self) -> list[tuple[str, Child]]:
        """Every worker process running now with its pool: slots, and during a rolling
        restart both the retiring and the warming-up process."""
        found = [c for s in list(self.slots) if (c := s.child) is not None]
        found += list(self.retiring)
        step = self._step
        if step is not None and all(c is not step.new for c in found):
            found.append(step.new)
        # ``returncode`` is set by the loop's poll(); never wait on a child from here.
        return [(c.pool, c) for c in found if c.proc.returncode is None]

    def pool_status(self) -> dict[str, PoolStatus]:
        """Per pool: processes wanted and running, and exits since start."""
        out: dict[str, PoolStatus] = {}
        for pool in self.pools:
            slots = [s for s in list(self.slots) if s.pool is pool]
            out[pool.name] = PoolStatus(
                processes=pool.processes,
                running=sum(
                    1 for s in slots if (c := s.child) is not None and c.proc.returncode is None
                ),
                recycled=sum(s.recycled for s in slots),
                crashed=sum(s.crashed for s in slots),
            )
        return out

    # -- state for other shells ------------------------------------------------------------
    def state(self, *, stopping: bool = False) -> dict[str, Any]:
        """What ``conveyor run status`` shows."""
        pools = []
        for pool in self.pools:
            workers = [
                {
                    "slot": s.index,
                    "pid": s.child.pid if s.child else None,
                    "started_at": s.child.started_at if s.child else None,
                    "state": "running" if s.child else "restarting",
                    "restarts": s.restarts,
                    "crashes": s.crashes,
                    "last_exit": s.last_exit,
                }
                for s in self.slots
                if s.pool is pool
            ]
            pools.append(
                {
                    "name": pool.name,
                    "processes": pool.processes,
                    "queues": list(pool.queues or ["*"]),
                    "workers": workers,
                }
            )
        return {
            **self.info,
            "pid": _pid(),
            "create_time": self._create_time,
            "started_at": self._started_at,
            "stopping": stopping,
            "rolling": self._step is not None or bool(self._roll),
            "retiring": [c.pid for c in self.retiring],
            "pools": pools,
        }

    def _save(self, *, stopping: bool = False) -> None:
        state = self.state(stopping=stopping)
        text = json.dumps(state, sort_keys=True)
        if text != self._last_state:
            self._last_state = text
            self.run_dir.write(state)


def _pid() -> int:
    return os.getpid()
