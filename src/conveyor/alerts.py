"""Wait-time alerts: a report on a logging channel when a queue's oldest ready job waits too
long, once per incident.

Thresholds come from ``ALERT_WAIT_SECONDS`` (every queue) and ``ALERT_WAIT_QUEUES``
(``mail=60,reports-*=600``: a queue name or glob, then seconds; the first match wins over
the default). Every ``ALERT_INTERVAL`` seconds one process in the fleet, the holder of the
backend lease `LEASE`, reads `Admin.oldest_ready` and compares ``now - run_at`` with the
queue's threshold:

* crossing it logs one line at ``ALERT_LEVEL`` on ``ALERT_CHANNEL``: the queue, how long
  its oldest ready job has waited, the threshold and how many jobs are ready;
* staying above logs nothing more;
* going back under (or the queue emptying) logs one ``recovered`` line.

Every ``conveyor worker`` runs a `WaitAlerts` when a threshold is set; the lease makes one
of them check (another takes over within a few intervals when it stops). A process that
takes over does not know what its predecessor reported, so an incident in progress during
a hand-over is reported again by the new holder.

The lease is the store's `Scheduling` capability and the wait times its `Admin`: on a store
without both, the alerts are off and one warning says why (the worker runs on).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from conveyor.backends.capabilities import Admin, Scheduling, Unsupported
from conveyor.job import State
from conveyor.logs import Log
from conveyor.logs import log as default_log

if TYPE_CHECKING:
    from conveyor.backends.base import Backend
    from conveyor.clock import Clock
    from conveyor.settings import Settings

log = logging.getLogger("conveyor.alerts")

#: The backend lease that makes one process in the fleet the checker.
LEASE = "conveyor:alerts"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Seconds a queue's oldest ready job may wait, per queue."""

    default: float | None = None
    #: Queue name or glob → seconds, in the order given (first match wins).
    queues: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        """``ALERT_WAIT_SECONDS`` and ``ALERT_WAIT_QUEUES``."""
        return cls(settings.alert_wait_seconds, dict(settings.alert_wait_queues or {}))

    def __bool__(self) -> bool:
        return self.default is not None or bool(self.queues)

    def of(self, queue: str) -> float | None:
        """The threshold of ``queue`` (``None``: not watched)."""
        if queue in self.queues:
            return self.queues[queue]
        for pattern, seconds in self.queues.items():
            if fnmatch.fnmatchcase(queue, pattern):
                return seconds
        return self.default


@dataclass(frozen=True, slots=True)
class Incident:
    """A queue above its threshold since ``since`` (backend clock)."""

    queue: str
    since: float
    threshold: float


class WaitAlerts:
    """Checks queue wait times every ``interval`` seconds while it holds the `LEASE`."""

    def __init__(
        self,
        backend: Backend,
        clock: Clock,
        thresholds: Thresholds,
        *,
        channel: str | None = None,
        level: str = "error",
        interval: float = 15.0,
        owner: str | None = None,
    ) -> None:
        self.backend = backend
        self.clock = clock
        self.thresholds = thresholds
        #: Where reports go: a channel's `Log` (checked now: a `ConfigError` if unknown).
        self.out: Log = default_log if channel is None else default_log.channel(channel)
        self.level = level
        self.interval = interval
        self.lease_ttl = max(3 * interval, 1.0)
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        #: Queues above their threshold, as last reported.
        self.incidents: dict[str, Incident] = {}
        self.leading = False
        self._opened = False

    @classmethod
    def from_settings(
        cls, backend: Backend, clock: Clock, settings: Settings, *, owner: str | None = None
    ) -> WaitAlerts | None:
        """The alerts the ``ALERT_*`` settings ask for, or ``None`` when no threshold is set
        (or the store cannot run them: a warning says so)."""
        thresholds = Thresholds.from_settings(settings)
        if not thresholds:
            return None
        try:
            backend.require(Admin, Scheduling, purpose="wait alerts (ALERT_WAIT_*)")
        except Unsupported as exc:
            log.warning("wait alerts are off: %s", exc)
            return None
        return cls(
            backend,
            clock,
            thresholds,
            channel=settings.alert_channel,
            level=settings.alert_level,
            interval=settings.alert_interval,
            owner=owner,
        )

    async def check(self) -> None:
        """Take or renew the lease; if held, compare every queue's wait with its threshold."""
        if not self._opened:
            await self.backend.open()
            self._opened = True
        leading = await self.backend.scheduling.acquire_lease(LEASE, self.owner, self.lease_ttl)
        if leading != self.leading:
            self.leading = leading
            log.info(
                "wait alerts: %s",
                "this process checks the queues"
                if leading
                else "another process checks the queues",
            )
        if not leading:
            # The holder reports from now on; what we knew is stale when we lead again.
            self.incidents.clear()
            return
        oldest = await self.backend.admin.oldest_ready()
        now = self.clock.now()
        crossed: list[tuple[str, float, float]] = []
        for queue, run_at in sorted(oldest.items()):
            threshold = self.thresholds.of(queue)
            waited = now - run_at
            if threshold is not None and waited > threshold:
                if queue not in self.incidents:
                    crossed.append((queue, waited, threshold))
            elif queue in self.incidents:
                self._recovered(self.incidents.pop(queue), now)
        for queue in [q for q in self.incidents if q not in oldest]:
            self._recovered(self.incidents.pop(queue), now)  # nothing ready any more
        if crossed:
            ready = await self._ready_counts()
            for queue, waited, threshold in crossed:
                self.incidents[queue] = Incident(queue, now - waited + threshold, threshold)
                self.out.log(
                    self.level,
                    f"queue {queue!r}: the oldest ready job has waited {_span(waited)} "
                    f"(threshold {_span(threshold)}); {ready.get(queue, 0)} job(s) ready",
                    alert="queue_wait",
                    queue=queue,
                    waited=round(waited, 1),
                    threshold=threshold,
                    ready=ready.get(queue, 0),
                )

    def _recovered(self, incident: Incident, now: float) -> None:
        self.out.log(
            self.level,
            f"queue {incident.queue!r} recovered: ready jobs wait less than "
            f"{_span(incident.threshold)} again (alert lasted {_span(now - incident.since)})",
            alert="queue_wait_recovered",
            queue=incident.queue,
            threshold=incident.threshold,
            lasted=round(now - incident.since, 1),
        )

    async def _ready_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in await self.backend.admin.stats():
            counts[row.queue] = counts.get(row.queue, 0) + row.counts.get(State.READY, 0)
        return counts

    async def run(self) -> None:
        """`check` every ``interval`` seconds until cancelled, then give up the lease."""
        failures = 0
        try:
            while True:
                try:
                    await self.check()
                    failures = 0
                except Exception as exc:  # noqa: BLE001 - alerts must never stop a worker
                    failures += 1
                    if failures == 1:
                        log.warning(
                            "wait alerts: the check failed (%s: %s); retrying",
                            type(exc).__name__,
                            exc,
                        )
                await asyncio.sleep(self.interval)
        finally:
            await self._resign()

    async def _resign(self) -> None:
        if not self._opened:
            return
        with contextlib.suppress(Exception, asyncio.CancelledError):
            if self.leading:
                release = self.backend.scheduling.release_lease(LEASE, self.owner)
                await asyncio.wait_for(release, 5.0)
            await self.backend.close()
        self._opened = False
        self.leading = False


def _span(seconds: float) -> str:
    """``45s``, ``12m 5s``, ``3h 20m``."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    return f"{s // 3600}h {s % 3600 // 60}m"
