"""Housekeeping that any worker may do: recover expired leases, prune old jobs.

Every backend makes `recover` and `purge` safe to run from many workers at once, so the
reaper needs no election: each worker runs it, and a pass that finds nothing costs little.
Recovery is a core verb; pruning needs the store's `Admin` capability, and a store without
it keeps its finished jobs (the worker says so once at start, `needs.py`).
"""

from __future__ import annotations

import logging

from conveyor.backends.base import Backend
from conveyor.backends.capabilities import Admin
from conveyor.clock import Clock
from conveyor.job import State

log = logging.getLogger("conveyor.worker")


class Reaper:
    """Recovers expired leases every ``interval`` s; prunes finished jobs every ``prune_every``."""

    def __init__(
        self,
        backend: Backend,
        clock: Clock,
        *,
        max_recoveries: int,
        result_ttl: float,
        dead_ttl: float,
        prune_every: float = 60.0,
    ) -> None:
        self.backend = backend
        #: The store's admin part, which prunes; ``None`` when the store has none.
        self.admin = backend.admin if backend.supports(Admin) else None
        self.clock = clock
        self.max_recoveries = max_recoveries
        self.result_ttl = result_ttl
        self.dead_ttl = dead_ttl
        self.prune_every = prune_every
        self._last_prune = float("-inf")
        self.recovered = 0
        self.poisoned = 0

    async def tick(self) -> None:
        """One pass; errors are logged, never raised."""
        try:
            report = await self.backend.recover(self.max_recoveries)
        except Exception as exc:  # noqa: BLE001 - the next tick tries again
            log.warning("lease recovery failed: %s", exc)
            return
        if report.recovered or report.dead:
            self.recovered += report.recovered
            self.poisoned += report.dead
            log.warning(
                "recovered %d job(s) whose worker lost its lease; %d dead-lettered as poison pills",
                report.recovered,
                report.dead,
            )
        now = self.clock.now()
        if self.admin is not None and now - self._last_prune >= self.prune_every:
            self._last_prune = now
            try:
                # Ages, not times: the store counts them back from its own now.
                await self.admin.purge(
                    [State.SUCCEEDED, State.CANCELLED], older_than=self.result_ttl
                )
                await self.admin.purge([State.DEAD], older_than=self.dead_ttl)
            except Exception as exc:  # noqa: BLE001
                log.warning("pruning finished jobs failed: %s", exc)
