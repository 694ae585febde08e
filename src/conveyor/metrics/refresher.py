"""The refresher: reads the backend every few seconds so scrapes and probes never wait on it.

It runs on the worker's event loop with its own backend handle (`Backend.clone`), so its
reads neither share a connection with the worker's claims nor block the scrape thread. It
also ticks ``loop_tick`` every `TICK_SECONDS`: if that timestamp goes stale, the event loop
is stuck (a blocking call in an ``async def``), which is what ``/livez`` reports.

Queue depth, lease counters and the oldest ready job per queue come from the store's
`Admin` capability (the same `Admin.oldest_ready` the dashboard and the wait alerts read),
live workers from its `Telemetry`; what the store lacks is not read, and `BackendView.kept`
says what was. The servers the store is on (`Admin.servers`: a Redis primary, its replicas,
the sentinels, a Cluster's shards) are read too, on every refresh, so a failover shows
within one cycle; a store that cannot name them gives none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from conveyor.backends.base import Backend
from conveyor.backends.capabilities import Admin, ServerInfo, Telemetry
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.job import QueueStats

log = logging.getLogger("conveyor.metrics")

TICK_SECONDS = 1.0
#: The job id read on a store without `Admin`, to learn whether it answers.
PROBE_ID = "conveyor-metrics-probe"


@dataclass(frozen=True, slots=True)
class BackendView:
    """One read of the backend: job counts per queue and priority, counters, live workers.

    A store without `Admin` gives no ``queues`` and no ``counters``, one without
    `Telemetry` no ``workers`` (0): ``kept`` names the capabilities that were read
    (``"admin"``, ``"telemetry"``), so an exporter can leave out what the store does not
    keep rather than report zeros.
    """

    queues: list[QueueStats]
    counters: dict[str, int]
    workers: int
    #: ``time.monotonic()`` when the read finished.
    read_at: float
    #: The capabilities the figures come from.
    kept: frozenset[str] = frozenset({Admin.name, Telemetry.name})
    #: Per queue with ready jobs (due scheduled ones count): seconds its oldest ready job
    #: had waited when the store was read. Queues without a ready job are absent.
    waits: Mapping[str, float] = field(default_factory=dict)
    #: The servers the store is on (`Admin.servers`): empty when it names none, or when
    #: reading them failed (the other figures still count).
    servers: tuple[ServerInfo, ...] = ()


def queue_waits(oldest_ready: Mapping[str, float], now: float) -> dict[str, float]:
    """Seconds each queue's oldest ready job has waited at ``now``, from `Admin.oldest_ready`.

    Never negative: a job due a moment after ``now`` by another host's clock has waited 0 s.
    """
    return {queue: max(0.0, now - run_at) for queue, run_at in oldest_ready.items()}


class Refresher:
    """Keeps a `BackendView` fresh; `run` until cancelled."""

    def __init__(
        self,
        backend: Backend,
        *,
        interval: float = 5.0,
        timeout: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.backend = backend
        #: The clock waits are measured on (the app's, as the dashboard measures them).
        self.clock = clock
        self.interval = interval
        self.timeout = timeout
        #: The last successful read (``None`` until the first one).
        self.view: BackendView | None = None
        #: Why the last read failed (``None`` when it succeeded).
        self.error: str | None = "the backend has not been read yet"
        self.loop_tick = time.monotonic()
        self._opened = False
        #: Why the last read of the servers failed (logged once, when it changes).
        self._servers_error: str | None = None

    def backend_age(self) -> float | None:
        """Seconds since the last successful read (``None``: never)."""
        return None if self.view is None else time.monotonic() - self.view.read_at

    def backend_fresh(self) -> bool:
        """True when the last read succeeded and is not older than a refresh cycle allows."""
        age = self.backend_age()
        return self.error is None and age is not None and age <= self.max_age

    @property
    def max_age(self) -> float:
        """How old the view may be while the backend still counts as reachable."""
        return self.interval + self.timeout + TICK_SECONDS

    async def run(self) -> None:
        """Read now and every ``interval`` seconds; tick the loop timestamp meanwhile."""
        ticker = asyncio.create_task(self._tick())
        try:
            while True:
                await self.refresh()
                await asyncio.sleep(self.interval)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await self._close()

    async def refresh(self) -> None:
        """One read of the backend, bounded by ``timeout``."""
        try:
            self.view = await asyncio.wait_for(self._read(), self.timeout)
            self.error = None
        except TimeoutError:
            self.error = f"the backend did not answer within {self.timeout:g}s"
        except Exception as exc:  # noqa: BLE001 - reported by /readyz, retried next cycle
            self.error = f"{type(exc).__name__}: {exc}"
        if self.error is not None:
            log.debug("metrics refresh failed: %s", self.error)

    async def _read(self) -> BackendView:
        if not self._opened:
            await self.backend.open()
            self._opened = True
        backend = self.backend
        queues: list[QueueStats] = []
        counters: dict[str, int] = {}
        workers = 0
        waits: dict[str, float] = {}
        servers: tuple[ServerInfo, ...] = ()
        if backend.supports(Admin):
            queues = await backend.admin.stats()
            counters = await backend.admin.counters()
            waits = queue_waits(await backend.admin.oldest_ready(), self.clock.now())
            servers = await self._servers(backend.admin)
        else:  # still one round trip, so an unreachable store shows as one
            await backend.get(PROBE_ID)
        if backend.supports(Telemetry):
            workers = len(await backend.telemetry.workers())
        kept = frozenset(c.name for c in (Admin, Telemetry) if backend.supports(c))
        return BackendView(queues, counters, workers, time.monotonic(), kept, waits, servers)

    async def _servers(self, admin: Admin) -> tuple[ServerInfo, ...]:
        # The jobs' figures were read: a store whose topology cannot be read (a user
        # without INFO on a Sentinel, a cluster mid-failover) is still up, it only shows
        # no servers this time.
        try:
            found = tuple(await admin.servers())
        except Exception as exc:  # noqa: BLE001 - retried next cycle
            error = f"{type(exc).__name__}: {exc}"
            if error != self._servers_error:
                log.warning("could not read which servers the store is on: %s", error)
            self._servers_error = error
            return ()
        self._servers_error = None
        return found

    async def _tick(self) -> None:
        while True:
            self.loop_tick = time.monotonic()
            await asyncio.sleep(TICK_SECONDS)

    async def _close(self) -> None:
        if self._opened:
            try:
                await self.backend.close()
            except Exception:
                log.debug("metrics backend close failed", exc_info=True)
