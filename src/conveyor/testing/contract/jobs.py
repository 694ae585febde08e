"""Small builders the contract tests share: new jobs, enqueueing and claiming them.

They use the core verbs only, so they work on any store.
"""

from __future__ import annotations

import itertools
from typing import Any

from conveyor.backends.base import Backend
from conveyor.job import JobRecord, Lease, NewJob, Priority, Routing

#: A routing that matches every job.
EVERYTHING = Routing()
#: The lease, in seconds, every claim in the suite asks for.
LEASE = 30.0
_n = itertools.count()


def new_job(
    task: str = "app.work",
    queue: str = "default",
    priority: Priority = Priority.NORMAL,
    **fields: Any,
) -> NewJob:
    """A job with a distinct payload, so tests can tell jobs apart by it as well as by id."""
    fields.setdefault("payload", f"[{next(_n)}]".encode())
    fields.setdefault("max_retries", 3)
    fields.setdefault("timeout", 60.0)
    return NewJob(task=task, queue=queue, priority=priority, **fields)


async def add(backend: Backend, *jobs: NewJob) -> list[str]:
    """Enqueue and return the ids, asserting none was a unique-key duplicate."""
    results = await backend.enqueue(list(jobs))
    assert [r.existing for r in results] == [False] * len(jobs)
    return [r.id for r in results]


async def take(
    backend: Backend, routing: Routing = EVERYTHING, limit: int = 100, worker: str = "w1"
) -> list[JobRecord]:
    """Claim with the standard lease, without waiting."""
    return await backend.claim(worker, routing, limit, LEASE)


async def take_one(backend: Backend, routing: Routing = EVERYTHING) -> tuple[JobRecord, Lease]:
    """Claim exactly one job and return it with its lease."""
    [job] = await take(backend, routing, limit=1)
    assert job.lease_token is not None
    return job, Lease(job.id, job.lease_token)


async def stored(backend: Backend, job_id: str) -> JobRecord:
    """The stored job, which must exist."""
    job = await backend.get(job_id)
    assert job is not None, f"job {job_id} is not in the store"
    return job


async def state_of(backend: Backend, job_id: str) -> str:
    """The job's state name."""
    return (await stored(backend, job_id)).state.value
