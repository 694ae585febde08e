"""The memory backend: the reference implementation of the Backend protocol.

Everything lives in one process, guarded by one lock, so it is thread-safe and its
behaviour is easy to read. `clone()` shares the same store. Used by unit tests, the eager
testing mode, and as the model the other backends are checked against.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import itertools
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Self

from conveyor.backends.base import (
    COUNTERS,
    Backend,
    RecoveryReport,
    claim_waiting,
    poison_pill_reason,
)
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.job import (
    ACTIVE_STATES,
    FINAL_STATES,
    EnqueueResult,
    Failure,
    HistoryPoint,
    JobQuery,
    JobRecord,
    Lease,
    NewJob,
    QueueStats,
    Routing,
    State,
    WorkerInfo,
    check_transition,
)

#: Every field of a record, in constructor order, read in one call (`_copy_record`).
_RECORD_FIELDS = attrgetter(*(f.name for f in dataclasses.fields(JobRecord)))


#: Immutable JSON values, shared rather than copied (and without a call per value).
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _copy_json(value: Any) -> Any:
    """A copy of JSON-shaped data: new dicts and lists at every depth, scalars shared."""
    if type(value) is dict:
        return {k: v if type(v) in _SCALARS else _copy_json(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return [v if type(v) in _SCALARS else _copy_json(v) for v in value]
    return value


def _copy_record(job: JobRecord) -> JobRecord:
    """A record nobody else holds: what a real store's decoding gives every caller.

    The other stores serialise, so a caller changing a returned record (middleware editing
    ``ctx.headers``) or the headers it enqueued cannot reach what they hold; the reference
    must not let it either. Built field by field: about 3 µs, against 5 µs for `copy.copy`
    of a slotted dataclass and 33 µs for `copy.deepcopy`.
    """
    out = JobRecord(*_RECORD_FIELDS(job))
    out.headers = _copy_json(job.headers)
    if job.raw is not None:
        out.raw = dict(job.raw)
    return out


def _copy_worker(info: WorkerInfo) -> WorkerInfo:
    out = copy.copy(info)
    out.stats = _copy_json(info.stats)
    return out


@dataclass
class _Store:
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)
    unique: dict[str, str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    workers: dict[str, tuple[WorkerInfo, float]] = field(default_factory=dict)
    leases: dict[str, tuple[str, float]] = field(default_factory=dict)  # name -> owner, expiry
    ticks: dict[str, float] = field(default_factory=dict)  # schedule entry -> last tick
    rates: dict[str, list[float]] = field(default_factory=dict)  # key -> start times
    slots: dict[str, dict[str, float]] = field(default_factory=dict)  # key -> holder -> expiry
    paused: set[str] = field(default_factory=set)
    history: dict[tuple[int, str], list[int]] = field(default_factory=dict)
    waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    seq: itertools.count[int] = field(default_factory=itertools.count)


class MemoryBackend(Backend):
    """Jobs in a dict; `memory://`."""

    def __init__(self, url: str = "memory://", *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.url = url
        self.clock = clock
        self._s = _Store()

    def clone(self) -> Self:
        """Another handle on the same in-process store (of the same class, for subclasses)."""
        other = type(self)(self.url, clock=self.clock)
        other._s = self._s
        return other

    # -- producing -----------------------------------------------------------------------
    async def enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        return self.enqueue_sync(jobs)

    def enqueue_sync(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        s = self._s
        out: list[EnqueueResult] = []
        with s.lock:
            now = self.clock.now()
            for new in jobs:
                if new.unique_key is not None and new.unique_key in s.unique:
                    out.append(EnqueueResult(s.unique[new.unique_key], existing=True))
                    continue
                run_at = new.due(now)
                s.jobs[new.id] = JobRecord(
                    id=new.id,
                    task=new.task,
                    queue=new.queue,
                    priority=new.priority,
                    state=State.SCHEDULED if run_at > now else State.READY,
                    payload=new.payload,
                    headers=_copy_json(new.headers),
                    attempts=0,
                    max_retries=new.max_retries,
                    timeout=new.timeout,
                    run_at=run_at,
                    created_at=now,
                    updated_at=now,
                    unique_key=new.unique_key,
                )
                s.order[new.id] = next(s.seq)
                if new.unique_key is not None:
                    s.unique[new.unique_key] = new.id
                out.append(EnqueueResult(new.id))
        self._wake()
        return out

    def _wake(self) -> None:
        with self._s.lock:
            waiters, self._s.waiters = self._s.waiters, []
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    # -- working -------------------------------------------------------------------------
    def _set_state(self, job: JobRecord, new: State, now: float) -> None:
        check_transition(job.state, new)
        job.state = new
        job.updated_at = now
        if new in FINAL_STATES:
            job.finished_at = now
            if job.unique_key is not None and self._s.unique.get(job.unique_key) == job.id:
                del self._s.unique[job.unique_key]
        if new is not State.RUNNING:
            job.lease_token = None
            job.lease_expires_at = None

    def _promote_due(self, now: float) -> None:
        for job in self._s.jobs.values():
            if job.state is State.SCHEDULED and job.run_at <= now:
                self._set_state(job, State.READY, now)

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
            lambda seconds: self.wait_for_work(routing, seconds),
            wait,
        )

    async def _claim_now(
        self, worker_id: str, routing: Routing, limit: int, lease_seconds: float
    ) -> list[JobRecord]:
        s = self._s
        with s.lock:
            now = self.clock.now()
            self._promote_due(now)
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
                self._set_state(job, State.RUNNING, now)
                job.attempts += 1
                job.lease_token = secrets.token_hex(16)
                job.lease_expires_at = now + lease_seconds
                job.worker_id = worker_id
                job.started_at = now
                claimed.append(_copy_record(job))
            return claimed

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
            self._set_state(job, State.SUCCEEDED, self.clock.now())
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
            if failure.retry_in is None:
                self._set_state(job, State.DEAD, now)
                job.failed_at = now
            else:
                self._set_state(job, State.SCHEDULED, now)
                job.run_at = now + failure.retry_in
        self._wake()
        return True

    async def release(self, lease: Lease) -> bool:
        with self._s.lock:
            job = self._held(lease)
            if job is None:
                return False
            self._set_state(job, State.READY, self.clock.now())
            job.attempts -= 1
        self._wake()
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
            self._set_state(job, State.SCHEDULED if delay > 0 else State.READY, now)
            job.attempts -= 1
            if headers is not None:
                job.headers = _copy_json(headers)
        self._wake()
        return True

    async def recover(self, max_recoveries: int) -> RecoveryReport:
        recovered = dead = 0
        with self._s.lock:
            now = self.clock.now()
            for job in self._s.jobs.values():
                expires = job.lease_expires_at
                if job.state is not State.RUNNING or expires is None or expires > now:
                    continue
                job.recoveries += 1
                job.attempts -= 1
                if job.recoveries >= max_recoveries:
                    job.last_error = poison_pill_reason(job.recoveries)
                    self._set_state(job, State.DEAD, now)
                    job.failed_at = now
                    dead += 1
                else:
                    self._set_state(job, State.READY, now)
                    recovered += 1
            self._s.counters["recovered"] += recovered
            self._s.counters["poisoned"] += dead
        if recovered:
            self._wake()
        return RecoveryReport(recovered, dead)

    async def wait_for_work(self, routing: Routing, timeout: float) -> None:
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

    # -- limits --------------------------------------------------------------------------
    async def rate_acquire(self, key: str, limit: int, period: float) -> float:
        with self._s.lock:
            now = self.clock.now()
            starts = [t for t in self._s.rates.get(key, []) if t > now - period]
            self._s.rates[key] = starts
            if len(starts) >= limit:
                return max(starts[-limit] + period - now, 1e-6)
            starts.append(now)
            return 0.0

    async def slot_acquire(self, key: str, holder: str, limit: int, ttl: float) -> bool:
        with self._s.lock:
            now = self.clock.now()
            held = {h: t for h, t in self._s.slots.get(key, {}).items() if t > now}
            self._s.slots[key] = held
            if holder not in held and len(held) >= limit:
                return False
            held[holder] = now + ttl
            return True

    async def slot_release(self, key: str, holder: str) -> None:
        with self._s.lock:
            self._s.slots.get(key, {}).pop(holder, None)

    # -- reading -------------------------------------------------------------------------
    async def get(self, job_id: str) -> JobRecord | None:
        return self.get_sync(job_id)

    def get_sync(self, job_id: str) -> JobRecord | None:
        with self._s.lock:
            job = self._s.jobs.get(job_id)
            return None if job is None else _copy_record(job)

    async def query(self, query: JobQuery) -> list[JobRecord]:
        with self._s.lock:
            found = [
                j
                for j in self._s.jobs.values()
                if (query.states is None or j.state in query.states)
                and (query.queue is None or j.queue == query.queue)
                and (query.task is None or j.task == query.task)
            ]
            order = self._s.order
            found.sort(key=lambda j: order[j.id], reverse=True)
            # Only the page is copied, and while the lock still keeps it whole.
            return [_copy_record(j) for j in found[query.offset : query.offset + query.limit]]

    async def stats(self) -> list[QueueStats]:
        with self._s.lock:
            now = self.clock.now()
            table: dict[tuple[str, int], QueueStats] = {}
            for j in self._s.jobs.values():
                row = table.setdefault((j.queue, j.priority), QueueStats(j.queue, j.priority))
                state = State.READY if j.state is State.SCHEDULED and j.run_at <= now else j.state
                row.counts[state] = row.counts.get(state, 0) + 1
        return [table[k] for k in sorted(table)]

    async def counters(self) -> dict[str, int]:
        with self._s.lock:
            return dict(self._s.counters)

    async def oldest_ready(self) -> dict[str, float]:
        with self._s.lock:
            now = self.clock.now()
            oldest: dict[str, float] = {}
            for j in self._s.jobs.values():
                if j.state is State.READY or (j.state is State.SCHEDULED and j.run_at <= now):
                    oldest[j.queue] = min(oldest.get(j.queue, j.run_at), j.run_at)
            return oldest

    async def record_history(self, points: Sequence[HistoryPoint], keep: float) -> None:
        with self._s.lock:
            table = self._s.history
            for p in points:
                row = table.setdefault((p.minute, p.queue), [0, 0])
                row[0] += p.succeeded
                row[1] += p.failed
            cutoff = self.clock.now() - keep
            for k in [k for k in table if k[0] < cutoff]:
                del table[k]

    async def history(self, since: float) -> list[HistoryPoint]:
        with self._s.lock:
            return [
                HistoryPoint(minute, queue, ok, bad)
                for (minute, queue), (ok, bad) in sorted(self._s.history.items())
                if minute >= since
            ]

    # -- repairing -----------------------------------------------------------------------
    async def retry_dead(self, job_ids: Sequence[str] | None = None) -> int:
        count = 0
        with self._s.lock:
            now = self.clock.now()
            wanted = None if job_ids is None else set(job_ids)
            for job in self._s.jobs.values():
                if job.state is not State.DEAD or (wanted is not None and job.id not in wanted):
                    continue
                if job.unique_key is not None and job.unique_key in self._s.unique:
                    continue  # a newer job holds the key; retrying would run it twice
                self._set_state(job, State.READY, now)
                job.attempts = 0
                job.recoveries = 0
                job.run_at = now
                job.finished_at = None
                if job.unique_key is not None:
                    self._s.unique[job.unique_key] = job.id
                count += 1
        if count:
            self._wake()
        return count

    async def cancel(self, job_id: str) -> bool:
        with self._s.lock:
            job = self._s.jobs.get(job_id)
            if job is None or job.state not in ACTIVE_STATES:
                return False
            self._set_state(job, State.CANCELLED, self.clock.now())
            return True

    async def delete(self, job_ids: Sequence[str]) -> int:
        with self._s.lock:
            doomed = [
                i
                for i in dict.fromkeys(job_ids)
                if i in self._s.jobs and self._s.jobs[i].state in FINAL_STATES
            ]
            for job_id in doomed:
                del self._s.jobs[job_id]
                del self._s.order[job_id]
        return len(doomed)

    async def pause_queue(self, queue: str) -> None:
        with self._s.lock:
            self._s.paused.add(queue)

    async def resume_queue(self, queue: str) -> None:
        with self._s.lock:
            self._s.paused.discard(queue)
        self._wake()

    async def paused_queues(self) -> list[str]:
        with self._s.lock:
            return sorted(self._s.paused)

    async def purge(self, states: Sequence[State], older_than: float | None = None) -> int:
        final = [s for s in states if s in FINAL_STATES]
        with self._s.lock:
            before = None if older_than is None else self.clock.now() - older_than
            doomed = [
                j.id
                for j in self._s.jobs.values()
                if j.state in final and (before is None or (j.finished_at or 0.0) < before)
            ]
            for job_id in doomed:
                del self._s.jobs[job_id]
                del self._s.order[job_id]
        return len(doomed)

    # -- scheduling ----------------------------------------------------------------------
    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        with self._s.lock:
            now = self.clock.now()
            holder = self._s.leases.get(name)
            if holder is not None and holder[0] != owner and holder[1] > now:
                return False
            self._s.leases[name] = (owner, now + ttl)
            return True

    async def release_lease(self, name: str, owner: str) -> None:
        with self._s.lock:
            holder = self._s.leases.get(name)
            if holder is not None and holder[0] == owner:
                del self._s.leases[name]

    async def schedule_state(self, names: Sequence[str]) -> dict[str, float | None]:
        with self._s.lock:
            return {name: self._s.ticks.get(name) for name in names}

    async def enqueue_tick(
        self, name: str, tick: float, jobs: Sequence[NewJob]
    ) -> list[EnqueueResult] | None:
        with self._s.lock:
            last = self._s.ticks.get(name)
            if last is not None and last >= tick:
                return None
            self._s.ticks[name] = tick
            return self.enqueue_sync(jobs)

    # -- worker registry -------------------------------------------------------------------
    async def register_worker(self, info: WorkerInfo, ttl: float) -> None:
        with self._s.lock:
            now = self.clock.now()
            info = _copy_worker(info)
            info.last_seen = now
            self._s.workers[info.id] = (info, now + ttl)

    async def unregister_worker(self, worker_id: str) -> None:
        with self._s.lock:
            self._s.workers.pop(worker_id, None)

    async def workers(self) -> list[WorkerInfo]:
        with self._s.lock:
            now = self.clock.now()
            live = {k: v for k, v in self._s.workers.items() if v[1] > now}
            self._s.workers = live
            return [_copy_worker(info) for info, _ in live.values()]
