"""The fetcher: claims the jobs a worker's routing matches while it has free slots.

Routing happens in storage, so everything claimed is run. With nothing to claim the fetcher
claims again with the store waiting for work (``claim(..., wait=poll_interval)``, cut short
by a stop), or waits for a slot to free up; a burst worker stops once nothing is left and
nothing runs. A claim that fails (the store is down) backs off (`conveyor.worker.backoff`),
and only a stop cuts that wait short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from conveyor.worker.backoff import Backoff
from conveyor.worker.ordered import claim_for

if TYPE_CHECKING:
    from conveyor.backends.base import Backend
    from conveyor.clock import Clock
    from conveyor.job import JobRecord, Routing

log = logging.getLogger("conveyor.worker")


@dataclass(slots=True)
class Events:
    """What the parts of one worker tell each other, on its loop.

    ``wake``: a slot came free or something changed (the fetcher looks again); ``stopping``:
    stop claiming; ``force``: stop now (a second signal).
    """

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    force: asyncio.Event = field(default_factory=asyncio.Event)

    async def woken(self) -> None:
        """Wait for the next wake-up, and take it."""
        await self.wake.wait()
        self.wake.clear()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; only a stop cuts it short (a job ending must not: that would
        turn an outage's back-off into a busy loop)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)


@dataclass(slots=True)
class Slots:
    """The worker's side of fetching: its free slots, and what to do with a claimed job."""

    free: Callable[[], int]
    start: Callable[[JobRecord], None]
    busy: Callable[[], bool]
    stop: Callable[[str], None]
    stopped: Callable[[], bool]


class Fetcher:
    """Claims jobs for one worker until it stops."""

    def __init__(
        self,
        backend: Backend,
        slots: Slots,
        events: Events,
        *,
        worker_id: str,
        routing: Routing,
        lease_seconds: float,
        poll_interval: float,
        burst: bool,
        clock: Clock,
        pickups: Callable[[float], None],
        ordered: bool = False,
        error_backoff: tuple[float, float] = (0.1, 10.0),
    ) -> None:
        self.backend = backend
        self.slots = slots
        self.events = events
        self.worker_id = worker_id
        self.routing = routing
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.burst = burst
        self.clock = clock
        self.pickups = pickups
        # Ordered queues (--queue high,low) claim queue by queue: `conveyor.worker.ordered`.
        self.claim = claim_for(backend, routing, ordered=ordered)
        self.error_backoff = error_backoff

    async def run(self) -> None:
        """Claim and start jobs until the worker stops."""
        first, cap = self.error_backoff
        backoff = Backoff("claiming jobs", log, first=first, cap=cap)
        slots, events = self.slots, self.events
        while not slots.stopped():
            free = slots.free()
            if free <= 0:
                await events.woken()
                continue
            try:
                jobs = await self.claim(self.worker_id, self.routing, free, self.lease_seconds)
                if not jobs and not self.burst:
                    jobs = await self._claim_waiting(free)
            except Exception as exc:  # noqa: BLE001 - an outage must not kill the worker
                await events.sleep(backoff.failed(exc))
                continue
            if backoff.failures:
                backoff.succeeded()
            if jobs:
                now = self.clock.now()
                for job in jobs:
                    self.pickups(max(0.0, now - job.run_at))
                    slots.start(job)
            elif self.burst:
                if not slots.busy():
                    slots.stop("burst: no more jobs in the queues this worker serves")
                else:
                    await events.woken()

    async def _claim_waiting(self, free: int) -> list[JobRecord]:
        """Claim with the store waiting for work (up to ``poll_interval``); a stop ends the
        wait, and the cancelled claim gives back anything it leased on the way."""
        claim = asyncio.ensure_future(
            self.claim(
                self.worker_id,
                self.routing,
                free,
                self.lease_seconds,
                wait=self.poll_interval,
            )
        )
        stopping = asyncio.ensure_future(self.events.stopping.wait())
        try:
            await asyncio.wait({claim, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (claim, stopping):
                if not fut.done():
                    fut.cancel()
            await asyncio.gather(claim, stopping, return_exceptions=True)
        self.events.wake.clear()
        if claim.cancelled():
            return []
        return claim.result()
