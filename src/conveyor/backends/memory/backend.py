"""`MemoryBackend`: the core job-store verbs on the shared `MemoryState`, and its parts.

Each verb takes the state's lock, reads the handle's clock once, changes plain dicts and
returns copies; a verb that makes work ready for a sleeping claim calls `MemoryState.wake`
after letting go of the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Sequence
from typing import Any, Self, TypedDict

from conveyor.attempts import KEEP, LOST_ERROR, ended
from conveyor.backends.base import (
    Backend,
    RecoveryReport,
    claim_waiting,
    poison_pill_reason,
)
from conveyor.backends.capabilities import Admin, Limits, Progress, Scheduling, Telemetry
from conveyor.backends.memory.admin import MemoryAdmin
from conveyor.backends.memory.limits import MemoryLimits
from conveyor.backends.memory.progress import MemoryProgress
from conveyor.backends.memory.scheduling import MemoryScheduling
from conveyor.backends.memory.state import MemoryState, copy_json, copy_record
from conveyor.backends.memory.telemetry import MemoryTelemetry
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.job import (
    EnqueueResult,
    Failure,
    JobRecord,
    Lease,
    NewJob,
    Routing,
    State,
)


class Parts(TypedDict, total=False):
    """The capability parts a memory store hands to `Backend.__init__`, by name."""

    limits: Limits
    scheduling: Scheduling
    admin: Admin
    telemetry: Telemetry
    progress: Progress


class MemoryBackend(Backend):
    """Jobs in a dict; ``memory://``. Every capability but transactions."""

    def __init__(
        self,
        url: str = "memory://",
        *,
        clock: Clock = SYSTEM_CLOCK,
        state: MemoryState | None = None,
    ) -> None:
        self.url = url
        self.clock = clock
        self._s = MemoryState() if state is None else state
        super().__init__(**self.compose(self._s, clock))

    @classmethod
    def compose(cls, state: MemoryState, clock: Clock) -> Parts:
        """The capability parts each handle is built with, all on the one shared state.

        A store built on this one that offers less returns fewer parts.
        """
        return Parts(
            limits=MemoryLimits(state, clock),
            scheduling=MemoryScheduling(state, clock),
            admin=MemoryAdmin(state, clock),
            telemetry=MemoryTelemetry(state, clock),
            progress=MemoryProgress(state, clock),
        )

    def clone(self) -> Self:
        """Another handle on the same in-process store (of the same class, for subclasses)."""
        return type(self)(self.url, clock=self.clock, state=self._s)

    # -- producing -----------------------------------------------------------------------
    async def enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        return self.enqueue_sync(jobs)

    def enqueue_sync(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        with self._s.lock:
            out = self._s.add(jobs, self.clock.now())
        self._s.wake()
        return out

    # -- working -------------------------------------------------------------------------
    async def claim(
        self,
        worker_id: str,
        routing: Routing,
        limit: int,
        lease_seconds: float,
        *,
        wait: float = 0.0,
    ) -> list[JobRecord]:
        """Lease up to ``limit`` matching jobs in run order, waiting up to ``wait`` seconds."""
        if wait <= 0:
            return await self._claim_now(worker_id, routing, limit, lease_seconds)
        return await claim_waiting(
            self,
            lambda: self._claim_now(worker_id, routing, limit, lease_seconds),
            lambda seconds: self._sleep_until_work(routing, seconds),
            wait,
            limit=limit,
        )

    async def _claim_now(
        self, worker_id: str, routing: Routing, limit: int, lease_seconds: float
    ) -> list[JobRecord]:
        s = self._s
        with s.lock:
            now = self.clock.now()
            for job in s.jobs.values():  # due scheduled jobs count as ready
                if job.state is State.SCHEDULED and job.run_at <= now:
                    s.set_state(job, State.READY, now)
            ready = [
                j
                for j in s.jobs.values()
                if j.state is State.READY
                and j.queue not in s.paused
                and routing.matches(j.queue, j.priority, j.task)
            ]
            ready.sort(key=lambda j: (j.priority, j.run_at, s.order[j.id]))
            claimed = []
            for job in ready[:limit]:
                s.set_state(job, State.RUNNING, now)
                job.attempts += 1
                job.lease_token = secrets.token_hex(16)
                job.lease_expires_at = now + lease_seconds
                job.worker_id = worker_id
                job.started_at = now
                claimed.append(copy_record(job))
            return claimed

    async def _sleep_until_work(self, routing: Routing, timeout: float) -> None:
        """Return when a claim for ``routing`` may find work, or after ``timeout`` seconds.

        Work is ready now, an enqueue or a resumed queue wakes the sleeper (`MemoryState.wake`,
        from any thread), or the next scheduled job falls due.
        """
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with self._s.lock:
            now = self.clock.now()
            # Work that arrived between the caller's empty claim and this call counts.
            paused = self._s.paused
            if any(
                j.state is State.READY
                and j.queue not in paused
                and routing.matches(j.queue, j.priority, j.task)
                for j in self._s.jobs.values()
            ):
                return
            due = [
                j.run_at
                for j in self._s.jobs.values()
                if j.state is State.SCHEDULED and j.queue not in paused
            ]
            if due:
                timeout = max(0.0, min(timeout, min(due) - now))
            self._s.waiters.append((loop, event))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    def _held(self, lease: Lease) -> JobRecord | None:
        """The job if ``lease`` is still its current lease; counts a fenced call otherwise."""
        job = self._s.jobs.get(lease.job_id)
        if job is None or job.state is not State.RUNNING or job.lease_token != lease.token:
            self._s.counters["fenced"] += 1
            return None
        return job

    async def extend(self, leases: Sequence[Lease], lease_seconds: float) -> list[bool]:
        with self._s.lock:
            now = self.clock.now()
            held = []
            for lease in leases:
                job = self._held(lease)
                if job is not None:
                    job.lease_expires_at = now + lease_seconds
                held.append(job is not None)
            return held

    async def complete(self, lease: Lease, result: bytes | None) -> bool:
        with self._s.lock:
            job = self._held(lease)
            if job is None:
                return False
            self._s.set_state(job, State.SUCCEEDED, self.clock.now())
            job.result = result
            return True

    async def fail(self, lease: Lease, failure: Failure) -> bool:
        with self._s.lock:
            job = self._held(lease)
            if job is None:
                return False
            now = self.clock.now()
            job.last_error = failure.error
            job.traceback = failure.traceback
            outcome = "dead" if failure.retry_in is None else "failed"
            log = ended(
                job.attempts,
                outcome,
                job.worker_id,
                job.started_at,
                now,
                failure.error,
                failure.traceback,
            )
            job.attempt_log = (*job.attempt_log, log)[-KEEP:]
            if failure.retry_in is None:
                self._s.set_state(job, State.DEAD, now)
                job.failed_at = now
            else:
                self._s.set_state(job, State.SCHEDULED, now)
                job.run_at = now + failure.retry_in
        self._s.wake()
        return True

    async def release(self, lease: Lease) -> bool:
        with self._s.lock:
            job = self._held(lease)
            if job is None:
                return False
            self._s.set_state(job, State.READY, self.clock.now())
            job.attempts -= 1
        self._s.wake()
        return True

    async def defer(
        self, lease: Lease, delay: float, headers: dict[str, Any] | None = None
    ) -> bool:
        with self._s.lock:
            job = self._held(lease)
            if job is None:
                return False
            now = self.clock.now()
            job.run_at = now + max(0.0, delay)
            self._s.set_state(job, State.SCHEDULED if delay > 0 else State.READY, now)
            job.attempts -= 1
            if headers is not None:
                job.headers = copy_json(headers)
        self._s.wake()
        return True

    async def recover(self, max_recoveries: int) -> RecoveryReport:
        recovered = dead = 0
        with self._s.lock:
            now = self.clock.now()
            for job in self._s.jobs.values():
                expires = job.lease_expires_at
                if job.state is not State.RUNNING or expires is None or expires > now:
                    continue
                lost = ended(job.attempts, "lost", job.worker_id, job.started_at, now, LOST_ERROR)
                job.attempt_log = (*job.attempt_log, lost)[-KEEP:]
                job.recoveries += 1
                job.attempts -= 1
                if job.recoveries >= max_recoveries:
                    job.last_error = poison_pill_reason(job.recoveries)
                    self._s.set_state(job, State.DEAD, now)
                    job.failed_at = now
                    dead += 1
                else:
                    self._s.set_state(job, State.READY, now)
                    recovered += 1
            self._s.counters["recovered"] += recovered
            self._s.counters["poisoned"] += dead
        if recovered:
            self._s.wake()
        return RecoveryReport(recovered, dead)

    # -- reading -------------------------------------------------------------------------
    async def get(self, job_id: str) -> JobRecord | None:
        return self.get_sync(job_id)

    def get_sync(self, job_id: str) -> JobRecord | None:
        with self._s.lock:
            job = self._s.jobs.get(job_id)
            return None if job is None else copy_record(job)
