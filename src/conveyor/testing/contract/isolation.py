"""What a store hands out and takes in is a copy: changing it later changes nothing stored.

Redis, SQLite and PostgreSQL serialise every record, so this holds for them by construction;
the memory reference must copy to behave the same, or middleware that edits ``ctx.headers``
would change the memory store and no other.
"""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.backends.base import Backend
from conveyor.backends.capabilities import Admin, Telemetry
from conveyor.job import JobQuery, WorkerInfo
from conveyor.testing.contract.fixtures import requires
from conveyor.testing.contract.jobs import add, new_job, take_one


def headers() -> dict[str, Any]:
    return {"correlation_id": "c-1", "tags": ["a", "b"], "nested": {"n": 1, "list": [1]}}


def vandalise(h: dict[str, Any]) -> None:
    """Change a headers dict at every depth."""
    h["correlation_id"] = "changed"
    h["extra"] = True
    h["tags"].append("c")
    h["nested"]["n"] = 2
    h["nested"]["list"].append(2)


async def stored_headers(backend: Backend, job_id: str) -> dict[str, Any]:
    job = await backend.get(job_id)
    assert job is not None
    return job.headers


@pytest.mark.asyncio
class TestIsolation:
    """Core: every store runs these; listing and the worker registry need their capability."""

    async def test_changing_a_new_jobs_headers_after_enqueue_changes_nothing(
        self, backend: Backend
    ) -> None:
        # Given a job enqueued with nested headers
        new = new_job(headers=headers())
        [job_id] = await add(backend, new)

        # When the caller goes on changing the dict it handed in
        vandalise(new.headers)

        # Then the store still holds what was enqueued
        assert await stored_headers(backend, job_id) == headers()

    async def test_changing_a_claimed_records_headers_changes_nothing(
        self, backend: Backend
    ) -> None:
        # Given a claimed job (what the worker's middleware sees as ctx.headers)
        [job_id] = await add(backend, new_job(headers=headers()))
        job, _ = await take_one(backend)

        # When the record's headers are changed at every depth
        vandalise(job.headers)

        # Then the stored job is untouched
        assert await stored_headers(backend, job_id) == headers()

    async def test_changing_a_record_from_get_changes_nothing(self, backend: Backend) -> None:
        [job_id] = await add(backend, new_job(headers=headers()))

        got = await backend.get(job_id)
        assert got is not None
        vandalise(got.headers)
        synced = backend.get_sync(job_id)
        assert synced is not None
        vandalise(synced.headers)

        assert await stored_headers(backend, job_id) == headers()

    @requires(Admin)
    async def test_changing_a_record_from_query_changes_nothing(self, backend: Backend) -> None:
        [job_id] = await add(backend, new_job(headers=headers()))

        [listed] = await backend.admin.query(JobQuery())
        vandalise(listed.headers)

        assert await stored_headers(backend, job_id) == headers()
        [again] = await backend.admin.query(JobQuery())
        assert again.headers == headers()

    async def test_changing_the_headers_given_to_defer_changes_nothing(
        self, backend: Backend
    ) -> None:
        [job_id] = await add(backend, new_job(headers={"a": 1}))
        _, lease = await take_one(backend)
        given = headers()

        assert await backend.defer(lease, 0.0, given)
        vandalise(given)

        assert await stored_headers(backend, job_id) == headers()

    @requires(Telemetry)
    async def test_changing_worker_stats_after_registering_changes_nothing(
        self, backend: Backend
    ) -> None:
        stats: dict[str, Any] = {"processed": 1, "queues": {"mail": [1]}}
        await backend.telemetry.register_worker(
            WorkerInfo(id="w1", host="h", pid=1, started_at=0.0, stats=stats), ttl=10
        )
        stats["processed"] = 2
        stats["queues"]["mail"].append(2)

        [listed] = await backend.telemetry.workers()
        listed.stats["queues"]["mail"].append(3)
        [again] = await backend.telemetry.workers()
        assert again.stats == {"processed": 1, "queues": {"mail": [1]}}
