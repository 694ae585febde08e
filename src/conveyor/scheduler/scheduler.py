"""`Scheduler`: one asyncio task that, while it leads, enqueues due cron and periodic ticks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.backends.capabilities import Scheduling
from conveyor.errors import ConfigError, SchemaVersionError
from conveyor.lifecycle import SignalTrap
from conveyor.schedule import MAX_CATCH_UP, ScheduleEntry, due_ticks, iso
from conveyor.scheduler.problems import EntryProblems

__all__ = ["LEADER_LEASE", "MAX_CATCH_UP", "ONE_SHOT_WINDOW", "Fired", "Scheduler"]

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.backends.base import Backend
    from conveyor.job import NewJob

log = logging.getLogger("conveyor.scheduler")

#: The name of the lease that makes one scheduler the active one.
LEADER_LEASE = "conveyor:scheduler"
#: How old a tick may be for a one-shot run (`Scheduler.fire_due`) to fire it on time: a
#: system cron runs ``conveyor schedule run`` once a minute, as Laravel's ``schedule:run``.
ONE_SHOT_WINDOW = 61.0


@dataclass(frozen=True, slots=True)
class Fired:
    """One tick this scheduler enqueued."""

    entry: str
    tick: float
    job_id: str
    existing: bool


class Scheduler:
    """Fires an app's schedule entries; run as many as you like, one leads at a time.

    Every ``interval`` seconds (``SCHEDULER_INTERVAL``) it takes or renews the leader lease
    (``lease_ttl``, default three intervals and at least 1 s); only the leader fires. A
    tick counts as on time for ``lease_ttl + interval`` seconds (long enough for a new
    leader to take over); older unfired ticks follow each entry's ``missed`` policy.

    The lease and the recorded ticks are the store's `Scheduling` capability: a store
    without it is refused here (`Unsupported`, one line), before anything starts.
    """

    def __init__(
        self,
        app: Conveyor,
        *,
        interval: float | None = None,
        lease_ttl: float | None = None,
        handle_signals: bool = False,
    ) -> None:
        app.backend.require(Scheduling, purpose="the scheduler")
        self.app = app
        self.interval = interval if interval is not None else app.settings.scheduler_interval
        if not 0.1 <= self.interval <= 60:
            raise ConfigError(
                f"scheduler interval={self.interval!r}s is out of range: give 0.1 to 60 "
                "seconds (SCHEDULER_INTERVAL)"
            )
        self.lease_ttl = lease_ttl if lease_ttl is not None else max(3 * self.interval, 1.0)
        self.window = self.lease_ttl + self.interval
        self.handle_signals = handle_signals
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self.is_leader = False
        self.fired: list[Fired] = []
        self.problems = EntryProblems()
        self.stop_reason: str | None = None
        self._stopping: asyncio.Event | None = None

    # -- control -------------------------------------------------------------------------
    def stop(self, reason: str = "stop requested") -> None:
        """Finish the current tick, give up the lease, and return from `run`."""
        if self.stop_reason is None:
            self.stop_reason = reason
            log.info("scheduler %s stopping: %s", self.owner, reason)
        if self._stopping is not None:
            self._stopping.set()

    async def run(self) -> int:
        """Tick until stopped; returns the process exit code (0)."""
        self._stopping = asyncio.Event()
        if self.stop_reason is not None:
            self._stopping.set()
        loop = asyncio.get_running_loop()
        trap = None
        if self.handle_signals:
            trap = SignalTrap(lambda sig: self.stop(f"received {sig.name}"), loop=loop)
        entries = sorted(self.app.schedules)
        log.info(
            "scheduler %s started: interval=%gs entries=%s",
            self.owner,
            self.interval,
            ",".join(entries) or "none",
        )
        try:
            while not self._stopping.is_set():
                started = loop.time()
                await self._safe_tick()
                left = self.interval - (loop.time() - started)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), max(0.0, left))
        finally:
            if trap is not None:
                trap.remove()
            await self._resign()
        return 0

    async def _safe_tick(self) -> None:
        try:
            await self.tick()
        except (ConfigError, SchemaVersionError):
            raise  # an operator must fix these; waiting cannot
        except Exception as exc:  # noqa: BLE001 - an outage must not kill the scheduler
            if self.is_leader:
                log.warning("scheduler %s lost contact while leading: %s", self.owner, exc)
            else:
                log.warning("scheduler tick failed: %s", exc)
            self.is_leader = False

    async def _resign(self) -> None:
        if not self.is_leader:
            return
        self.is_leader = False
        try:
            backend = await self.app.open()
            await backend.scheduling.release_lease(LEADER_LEASE, self.owner)
        except Exception:  # the lease expires on its own anyway
            log.debug("releasing the scheduler lease failed", exc_info=True)

    # -- one shot ------------------------------------------------------------------------
    async def fire_due(
        self, window: float = ONE_SHOT_WINDOW, backend: Backend | None = None
    ) -> list[Fired]:
        """Enqueue every entry's due ticks once, now, without the leader lease.

        For ``conveyor schedule run`` from a system cron and the dashboard's "Run due
        work": a tick up to ``window`` seconds old is on time, older ones follow the entry's
        ``missed`` policy. Safe with running schedulers and other one-shot runs on any
        number of hosts: `Scheduling.enqueue_tick` records each entry's tick atomically, so
        each due tick is enqueued by exactly one of them. Delayed jobs need nothing here:
        every store's claim makes them ready when due. ``backend``: an open handle on the
        app's store to use (the dashboard's), else the app's own.
        """
        if not self.app.schedules:
            return []
        self.window = max(self.window, window)
        return await self._fire_all((backend or await self.app.open()).scheduling)

    # -- one tick --------------------------------------------------------------------------
    async def tick(self) -> list[Fired]:
        """One pass: lead if possible, then enqueue every due tick; returns what it fired."""
        if not self.app.schedules:
            return []  # nothing to fire: no need to hold (or write) a lease
        scheduling = (await self.app.open()).scheduling
        leader = await scheduling.acquire_lease(LEADER_LEASE, self.owner, self.lease_ttl)
        if leader != self.is_leader:
            log.info(
                "scheduler %s %s",
                self.owner,
                "is now the leader" if leader else "is no longer the leader",
            )
            self.is_leader = leader
        if not leader:
            return []
        return await self._fire_all(scheduling)

    async def _fire_all(self, scheduling: Scheduling) -> list[Fired]:
        """Enqueue every entry's due ticks; returns (and keeps) what was fired."""
        entries = list(self.app.schedules.values())
        state = await scheduling.schedule_state([e.name for e in entries])
        fired: list[Fired] = []
        for entry in entries:
            fired += await self._fire(scheduling, entry, state.get(entry.name))
        self.fired += fired
        return fired

    async def _fire(
        self, scheduling: Scheduling, entry: ScheduleEntry, last: float | None
    ) -> list[Fired]:
        fired = []
        for tick, job in self._due_jobs(entry, last):
            results = await scheduling.enqueue_tick(entry.name, tick, [job])
            if results is None:
                continue  # another scheduler recorded this tick first
            [result] = results
            fired.append(Fired(entry.name, tick, result.id, result.existing))
            log.info("schedule %s: tick %s enqueued as job %s", entry.name, iso(tick), result.id)
        return fired

    def _due_jobs(self, entry: ScheduleEntry, last: float | None) -> list[tuple[float, NewJob]]:
        """The ticks of ``entry`` due now, each with its job; none if the entry is broken.

        A broken entry (its ticks or its job cannot be computed) is logged by `problems`,
        rarely, and skipped: the store is fine and the other entries still fire. Failures
        of the store itself happen in `enqueue_tick`, outside this, and end the tick.
        """
        # Absolute on purpose: a cron entry names wall-clock times, so this host's clock says
        # which ticks are due (keep scheduler hosts on NTP). A tick is only a label and the
        # order key enqueue_tick checks; its job is due at the store's now, like any other.
        now = self.app.clock.now()
        try:
            ticks = due_ticks(
                entry.schedule,
                last,
                now,
                window=self.window,
                missed=entry.missed,
                limit=MAX_CATCH_UP,
            )
            jobs = [(tick, entry.job(self.app, tick)) for tick in ticks]
        except (ConfigError, SchemaVersionError):
            raise  # an operator must fix these; waiting cannot
        except Exception as exc:  # noqa: BLE001 - one broken entry must not stop the others
            self.problems.failed(entry.name, exc, now)
            return []
        self.problems.worked(entry.name)
        if len(ticks) > 1 or (ticks and now - ticks[0] > self.window):
            log.warning(
                "schedule %s missed ticks since %s; policy %s: enqueueing %d",
                entry.name,
                "never" if last is None else iso(last),
                entry.missed,
                len(ticks),
            )
        return jobs
