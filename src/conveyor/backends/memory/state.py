"""The memory store's one state object, which every handle and every part shares.

`MemoryState` is the memory store's "connection": plain dicts guarded by one re-entrant
lock, so every operation is atomic across threads and handles. `MemoryBackend` (the core
verbs) and its capability parts (`MemoryLimits`, `MemoryScheduling`, `MemoryAdmin`,
`MemoryTelemetry`) are each built on it, as `MemoryPart`s are, and never call each other.

Records are copied on the way in and on the way out (`copy_record`, `copy_json`), as a real
store's serialisation would: a caller changing what it got back cannot change the store.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from conveyor.backends.base import COUNTERS
from conveyor.clock import Clock
from conveyor.job import (
    FINAL_STATES,
    EnqueueResult,
    JobRecord,
    NewJob,
    State,
    WorkerInfo,
    check_transition,
)

#: Every field of a record, in constructor order, read in one call (`copy_record`).
_RECORD_FIELDS = attrgetter(*(f.name for f in dataclasses.fields(JobRecord)))

#: Immutable JSON values, shared rather than copied (and without a call per value).
_SCALARS = frozenset({str, int, float, bool, type(None)})


def copy_json(value: Any) -> Any:
    """A copy of JSON-shaped data: new dicts and lists at every depth, scalars shared."""
    if type(value) is dict:
        return {k: v if type(v) in _SCALARS else copy_json(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return [v if type(v) in _SCALARS else copy_json(v) for v in value]
    return value


def copy_record(job: JobRecord) -> JobRecord:
    """A record nobody else holds: what a real store's decoding gives every caller.

    The other stores serialise, so a caller changing a returned record (middleware editing
    ``ctx.headers``) or the headers it enqueued cannot reach what they hold; the reference
    must not let it either. Built field by field: about 3 µs, against 5 µs for `copy.copy`
    of a slotted dataclass and 33 µs for `copy.deepcopy`.
    """
    out = JobRecord(*_RECORD_FIELDS(job))
    out.headers = copy_json(job.headers)
    if job.raw is not None:
        out.raw = dict(job.raw)
    return out


def copy_worker(info: WorkerInfo) -> WorkerInfo:
    """A worker entry nobody else holds (its ``stats`` copied too)."""
    out = copy.copy(info)
    out.stats = copy_json(info.stats)
    return out


@dataclass
class MemoryState:
    """Everything one memory store holds. Touch it only while holding `lock`."""

    jobs: dict[str, JobRecord] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)  # job id -> enqueue order
    unique: dict[str, str] = field(default_factory=dict)  # unique key -> job id holding it
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    workers: dict[str, tuple[WorkerInfo, float]] = field(default_factory=dict)  # -> expiry
    leases: dict[str, tuple[str, float]] = field(default_factory=dict)  # name -> owner, expiry
    ticks: dict[str, float] = field(default_factory=dict)  # schedule entry -> last tick
    rates: dict[str, list[float]] = field(default_factory=dict)  # key -> start times
    slots: dict[str, dict[str, float]] = field(default_factory=dict)  # key -> holder -> expiry
    paused: set[str] = field(default_factory=set)
    history: dict[tuple[int, str], list[int]] = field(default_factory=dict)  # -> [ok, failed]
    #: Claims sleeping until work may be ready, each on its own event loop (`wake`).
    waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    seq: itertools.count[int] = field(default_factory=itertools.count)

    def add(self, jobs: Sequence[NewJob], now: float) -> list[EnqueueResult]:
        """Store new jobs in order, or name the job already holding a job's unique key.

        The caller holds `lock` and calls `wake` once it has let go of it.
        """
        out: list[EnqueueResult] = []
        for new in jobs:
            if new.unique_key is not None and new.unique_key in self.unique:
                out.append(EnqueueResult(self.unique[new.unique_key], existing=True))
                continue
            run_at = new.due(now)
            self.jobs[new.id] = JobRecord(
                id=new.id,
                task=new.task,
                queue=new.queue,
                priority=new.priority,
                state=State.SCHEDULED if run_at > now else State.READY,
                payload=new.payload,
                headers=copy_json(new.headers),
                attempts=0,
                max_retries=new.max_retries,
                timeout=new.timeout,
                run_at=run_at,
                created_at=now,
                updated_at=now,
                unique_key=new.unique_key,
            )
            self.order[new.id] = next(self.seq)
            if new.unique_key is not None:
                self.unique[new.unique_key] = new.id
            out.append(EnqueueResult(new.id))
        return out

    def set_state(self, job: JobRecord, new: State, now: float) -> None:
        """Move ``job`` to ``new`` by the transition table, freeing what a final state frees."""
        check_transition(job.state, new)
        job.state = new
        job.updated_at = now
        if new in FINAL_STATES:
            job.finished_at = now
            if job.unique_key is not None and self.unique.get(job.unique_key) == job.id:
                del self.unique[job.unique_key]
        if new is not State.RUNNING:
            job.lease_token = None
            job.lease_expires_at = None

    def wake(self) -> None:
        """Wake every sleeping claim, on whichever thread's loop it waits, to claim again."""
        with self.lock:
            waiters, self.waiters = self.waiters, []
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)


class MemoryPart:
    """Base of the memory store's capability parts: the shared state and the handle's clock."""

    def __init__(self, state: MemoryState, clock: Clock) -> None:
        self._s = state
        self.clock = clock
