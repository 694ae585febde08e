"""Writing damage straight into a real Redis store, and reading it back raw.

The damage tests bypass Conveyor on the writing side (redis-py on a connection of their
own), as another program, a hand edit or a half-done migration would.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis import Redis
from tests.contract.support import server_url

from conveyor.backends import create_backend
from conveyor.backends.redis import RedisBackend
from conveyor.job import JobQuery, JobRecord, Lease, NewJob, Priority, Routing, State

#: The reason a quarantined job's last_error starts with.
UNREADABLE = "unreadable_record"
EVERYTHING = Routing()


def fresh_url() -> str:
    return f"{server_url('redis')}?prefix=dmg-{os.urandom(6).hex()}"


@pytest.fixture
async def backend() -> AsyncIterator[RedisBackend]:
    b = create_backend(fresh_url())
    assert isinstance(b, RedisBackend)
    await b.open()
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
def raw() -> Iterator[Redis]:
    with Redis.from_url(server_url("redis")) as client:
        yield client


def job(n: int, **fields: Any) -> NewJob:
    fields.setdefault("payload", f'{{"args":[{n}],"kwargs":{{}}}}'.encode())
    return NewJob(
        task=fields.pop("task", "app.work"),
        queue=fields.pop("queue", "default"),
        priority=fields.pop("priority", Priority.NORMAL),
        max_retries=fields.pop("max_retries", 0),
        timeout=fields.pop("timeout", 30.0),
        **fields,
    )


async def five_jobs(backend: RedisBackend) -> tuple[list[str], str]:
    """Five ready jobs in one lane; the middle one is the one to damage."""
    ids = [r.id for r in await backend.enqueue([job(n) for n in range(5)])]
    return ids[:2] + ids[3:], ids[2]


async def claim_all(backend: RedisBackend, limit: int = 10) -> list[JobRecord]:
    return await backend.claim("w1", EVERYTHING, limit, 30.0)


def errors(caplog: pytest.LogCaptureFixture) -> str:
    """Every error logged by the Redis backend, one per line."""
    return "\n".join(
        r.getMessage()
        for r in caplog.records
        if r.name == "conveyor.backend.redis" and r.levelname == "ERROR"
    )


async def assert_healthy_run(
    backend: RedisBackend, claimed: list[JobRecord], ids: list[str]
) -> None:
    """Exactly the healthy jobs were claimed, and each completes."""
    assert sorted(j.id for j in claimed) == sorted(ids)
    for j in claimed:
        assert j.lease_token is not None and j.unreadable is None
        assert await backend.complete(Lease(j.id, j.lease_token), None)
    for job_id in ids:
        record = await backend.get(job_id)
        assert record is not None and record.state is State.SUCCEEDED


def assert_quarantined(
    backend: RedisBackend, raw: Redis, job_id: str, field: str
) -> dict[bytes, bytes]:
    """The job is dead as unreadable, naming itself and ``field``; its indexes moved."""
    k = backend.keys
    stored: dict[bytes, bytes] = raw.hgetall(k.job(job_id))  # type: ignore[assignment]
    assert stored[b"state"] == b"dead", stored
    error = stored[b"last_error"].decode()
    assert error.startswith(UNREADABLE), error
    assert job_id in error and repr(field) in error, error
    assert b"failed_at" in stored and b"lease_token" not in stored, stored
    assert raw.zscore(k.leases, job_id) is None
    assert raw.zscore(k.done(State.DEAD), job_id) is not None
    return stored


async def assert_reads_work(backend: RedisBackend, job_id: str, field: str | None) -> JobRecord:
    """get, query, stats, oldest_ready and workers all answer; the damaged job shows as a
    placeholder naming ``field`` (``None``: it reads as a normal record)."""
    record = await backend.get(job_id)
    assert record is not None
    if field is not None:
        assert record.unreadable is not None and repr(field) in record.unreadable
        assert record.raw is not None
    listed = await backend.admin.query(JobQuery(limit=100))
    assert job_id in [j.id for j in listed]
    await backend.admin.query(JobQuery(states=(State.DEAD, State.READY), limit=100))
    await backend.admin.stats()
    await backend.admin.oldest_ready()
    await backend.telemetry.workers()
    assert backend.get_sync(job_id) is not None
    return record
