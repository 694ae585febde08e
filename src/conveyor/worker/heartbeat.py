"""The heartbeat: a thread that keeps running jobs' leases alive.

It runs on its own thread, event loop and backend connection, so a task that blocks the
worker's event loop (a ``time.sleep`` in an ``async def``) cannot make its own lease expire.
When the backend says a lease is gone, or no extend has succeeded for a whole lease, the
worker is told so it can cancel the job (its result would be fenced off anyway). It also
renews the concurrency slots running jobs hold (the store's `Limits`) and, on a store with
`Telemetry`, refreshes this worker's entry in the registry.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from conveyor.backends.base import Backend
from conveyor.job import Lease, WorkerInfo

log = logging.getLogger("conveyor.worker")


class Heartbeat(threading.Thread):
    """Extends held leases every ``interval`` seconds and refreshes the worker registry.

    ``info`` gives the registry entry; ``None`` when the store keeps no registry.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        lease_seconds: float,
        interval: float,
        on_lost: Callable[[list[str]], None],
        info: Callable[[], WorkerInfo] | None,
    ) -> None:
        super().__init__(name="conveyor-heartbeat", daemon=True)
        self.backend = backend
        self.lease_seconds = lease_seconds
        self.interval = interval
        self.on_lost = on_lost
        self.info = info
        self._leases: dict[str, tuple[Lease, float]] = {}
        self._slots: dict[str, tuple[str, int]] = {}  # job id -> concurrency key, limit
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self.beats = 0
        #: ``time.monotonic()`` of the last beat that reached the store: the registry refresh,
        #: or without a registry the lease extension (``None``: none yet).
        self.last_beat: float | None = None

    @property
    def ttl(self) -> float:
        """Seconds the registry keeps this worker after a refresh; a beat older is stale."""
        return max(3 * self.interval, 5.0)

    def hold(self, lease: Lease) -> None:
        """Start extending ``lease``."""
        with self._lock:
            self._leases[lease.job_id] = (lease, time.monotonic())

    def hold_slot(self, job_id: str, key: str, limit: int) -> None:
        """Keep renewing the concurrency slot ``job_id`` holds in ``key`` (like its lease)."""
        with self._lock:
            self._slots[job_id] = (key, limit)

    def drop(self, job_id: str) -> None:
        """Stop extending the lease (and any slot) of ``job_id``."""
        with self._lock:
            self._leases.pop(job_id, None)
            self._slots.pop(job_id, None)

    def stop(self) -> None:
        """Ask the thread to finish; `join` waits for it."""
        self._halt.set()

    def run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._open())
            while not self._halt.wait(self.interval):
                loop.run_until_complete(self._beat())
            loop.run_until_complete(self._close())
        finally:
            loop.close()

    async def _open(self) -> None:
        try:
            await self.backend.open()
            # Register at once, so `conveyor workers` shows a worker before its first beat.
            await self._register()
        except Exception as exc:  # noqa: BLE001 - retried on every beat
            log.warning("heartbeat could not reach the backend yet: %s", exc)

    async def _close(self) -> None:
        try:
            await self.backend.close()
        except Exception:
            log.debug("heartbeat backend close failed", exc_info=True)

    async def _renew_slots(self) -> None:
        with self._lock:
            slots = list(self._slots.items())
        for job_id, (key, limit) in slots:
            try:
                limits = self.backend.limits
                if not await limits.slot_acquire(key, job_id, limit, self.lease_seconds):
                    log.warning(
                        "job %s: its concurrency slot in %r expired and was taken by another "
                        "job; the limit may be exceeded until one ends",
                        job_id,
                        key,
                    )
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                log.warning("could not renew the concurrency slot of job %s: %s", job_id, exc)

    async def _beat(self) -> None:
        with self._lock:
            held = list(self._leases.values())
        lost: list[str] = []
        reached = True
        if held:
            try:
                ok = await self.backend.extend([lease for lease, _ in held], self.lease_seconds)
            except Exception as exc:  # noqa: BLE001 - a blip must not stop the heartbeat
                log.warning("could not extend %d lease(s): %s", len(held), exc)
                ok = None
                reached = False
            now = time.monotonic()
            with self._lock:
                for i, (lease, last_ok) in enumerate(held):
                    if lease.job_id not in self._leases:
                        continue
                    if ok is not None and ok[i]:
                        self._leases[lease.job_id] = (lease, now)
                    elif ok is not None or now - last_ok > self.lease_seconds:
                        lost.append(lease.job_id)
                        del self._leases[lease.job_id]
        if lost:
            self.on_lost(lost)
        await self._renew_slots()
        if reached or self.info is not None:
            try:
                await self._register()
            except Exception as exc:  # noqa: BLE001
                log.debug("worker registry refresh failed: %s", exc)
        self.beats += 1

    async def _register(self) -> None:
        """Refresh the registry entry (if the store keeps one), and note the beat."""
        if self.info is not None:
            await self.backend.telemetry.register_worker(self.info(), ttl=self.ttl)
        self.last_beat = time.monotonic()
