"""Small builders shared by the contract tests (protocol types only)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conveyor.backends.base import Backend
from conveyor.job import JobRecord, Lease, NewJob, Priority, Routing

#: Environment variables naming the real servers the test command started.
SERVER_ENV = {"redis": "CONVEYOR_TEST_REDIS_URL", "postgres": "CONVEYOR_TEST_POSTGRES_URL"}


def server_url(name: str) -> str:
    """The base URL of a real test server; skips locally when unset, fails under CI."""
    import os

    import pytest

    url = os.environ.get(SERVER_ENV[name])
    if url:
        return url
    message = f"no {name} server: {SERVER_ENV[name]} is not set (scripts/test.sh sets it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def plugged_url(scheme: str) -> str:
    """``scheme://`` when a store for it is installed by entry point (the example store from
    tests/plugin_store); skips locally when it is not, fails under CI."""
    import pytest

    from conveyor.backends import stores

    store = stores().get(scheme)
    if store is not None and not store.builtin:
        return f"{scheme}://"
    message = (
        f"no {scheme}:// store is installed: pip install -e tests/plugin_store "
        "(scripts/test.sh installs it)"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


#: Backend name → URL of a fresh, empty store in a test's temporary directory.
BACKEND_URLS: dict[str, Callable[[Path], str]] = {
    "memory": lambda tmp: "memory://",
    "sqlite": lambda tmp: f"sqlite:///{tmp / 'contract.db'}",
    "postgres": lambda tmp: f"{server_url('postgres')}?schema=t_{os.urandom(6).hex()}",
    "redis": lambda tmp: f"{server_url('redis')}?prefix=test-{os.urandom(8).hex()}",
    "example": lambda tmp: plugged_url("example"),  # a third-party store, plugged in
}

EVERYTHING = Routing()
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
    """Claim with the standard lease."""
    return await backend.claim(worker, routing, limit, LEASE)


async def take_one(backend: Backend, routing: Routing = EVERYTHING) -> tuple[JobRecord, Lease]:
    """Claim exactly one job and return it with its lease."""
    [job] = await take(backend, routing, limit=1)
    assert job.lease_token is not None
    return job, Lease(job.id, job.lease_token)


async def state_of(backend: Backend, job_id: str) -> str:
    """The job's state name."""
    job = await backend.get(job_id)
    assert job is not None
    return job.state.value
