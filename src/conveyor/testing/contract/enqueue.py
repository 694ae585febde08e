"""Producing jobs: what enqueue stores, delays, bulk order and unique keys."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.backends.base import Backend
from conveyor.backends.capabilities import Admin
from conveyor.clock import FakeClock
from conveyor.job import Failure, NewJob, Priority, State
from conveyor.testing.contract.fixtures import requires
from conveyor.testing.contract.jobs import LEASE, add, new_job, stored, take, take_one


@pytest.mark.asyncio
class TestEnqueue:
    """Core: every store runs these."""

    async def test_enqueue_then_get_round_trips_every_field(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        new = NewJob(
            task="mail.send",
            queue="mail",
            priority=Priority.HIGH,
            payload=b'{"args":["a@example.com"],"kwargs":{"subject":"Hi \\u00e9"}}\x00\xff',
            max_retries=7,
            timeout=12.5,
            headers={"correlation_id": "c-1", "tags": ["x", "y"], "n": 3, "nested": {"ok": True}},
            unique_key="mail-a",
        )
        [result] = await backend.enqueue([new])
        assert result.id == new.id and result.existing is False

        job = await backend.get(new.id)

        assert job is not None
        assert (job.id, job.task, job.queue, job.priority) == (new.id, "mail.send", "mail", 0)
        assert job.state is State.READY
        assert job.payload == new.payload
        assert job.headers == new.headers
        assert (job.attempts, job.max_retries, job.timeout) == (0, 7, 12.5)
        assert job.run_at == job.created_at == job.updated_at == clock.now()
        assert job.unique_key == "mail-a"
        assert job.recoveries == 0
        assert (job.lease_token, job.lease_expires_at, job.worker_id) == (None, None, None)
        assert (job.started_at, job.finished_at, job.failed_at) == (None, None, None)
        assert (job.last_error, job.traceback, job.result) == (None, None, None)

    async def test_get_unknown_id_is_none(self, backend: Backend) -> None:
        assert await backend.get("nope") is None
        assert await asyncio.to_thread(backend.get_sync, "nope") is None

    async def test_enqueue_sync_and_get_sync_from_a_thread(self, backend: Backend) -> None:
        new = new_job(queue="q")

        [result] = await asyncio.to_thread(backend.enqueue_sync, [new])
        job = await asyncio.to_thread(backend.get_sync, result.id)

        assert job is not None and job.state is State.READY and job.payload == new.payload
        assert (await backend.get(new.id)) == job

    async def test_bulk_enqueue_keeps_order(self, backend: Backend) -> None:
        jobs = [new_job() for _ in range(20)]

        ids = await add(backend, *jobs)
        claimed = await take(backend)

        assert ids == [j.id for j in jobs]
        assert [j.id for j in claimed] == ids

    async def test_delayed_job_is_scheduled_until_due(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        # Given a job delayed by 60 s
        [job_id] = await add(backend, new_job(run_at=clock.now() + 60))
        job = await backend.get(job_id)
        assert job is not None and job.state is State.SCHEDULED
        assert job.run_at == clock.now() + 60

        # When time has not reached it, nobody can claim it
        clock.advance(59.9)
        assert await take(backend) == []

        # Then once due it is claimable
        clock.advance(0.1)
        [claimed] = await take(backend)
        assert claimed.id == job_id and claimed.state is State.RUNNING

    async def test_a_delay_is_due_that_long_after_the_stores_now(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        # Given jobs handed over with a delay (enqueue(delay=)), not a time
        [later, now, timed] = await add(
            backend,
            new_job(delay=42.5),
            new_job(delay=0.0),
            new_job(run_at=clock.now() + 5, delay=1000.0),  # an explicit run_at wins
        )

        # Then each is due on the store's own clock: now + delay, or its run_at
        got = {i: await stored(backend, i) for i in (later, now, timed)}
        assert got[later].state is State.SCHEDULED
        assert got[later].run_at == clock.now() + 42.5 == got[later].created_at + 42.5
        assert got[now].state is State.READY
        assert got[now].run_at == clock.now()
        assert got[timed].run_at == clock.now() + 5
        clock.advance(42.4)
        assert {j.id for j in await take(backend, limit=10)} == {now, timed}
        clock.advance(0.1)
        assert [j.id for j in await take(backend)] == [later]

    async def test_run_at_in_the_past_is_ready_at_once(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        [job_id] = await add(backend, new_job(run_at=clock.now() - 5))

        assert (await stored(backend, job_id)).state is State.READY

    async def test_unique_key_returns_the_active_job(self, backend: Backend) -> None:
        first = new_job(unique_key="k")
        [a] = await backend.enqueue([first])
        [b, c] = await backend.enqueue([new_job(unique_key="k"), new_job(unique_key="other")])
        [d] = await asyncio.to_thread(backend.enqueue_sync, [new_job(unique_key="k")])

        assert (a.existing, b.existing, c.existing, d.existing) == (False, True, False, True)
        assert a.id == b.id == d.id == first.id
        assert len(await take(backend)) == 2

    async def test_unique_key_within_one_batch(self, backend: Backend) -> None:
        a, b = new_job(unique_key="k"), new_job(unique_key="k")

        results = await backend.enqueue([a, b])

        assert [(r.id, r.existing) for r in results] == [(a.id, False), (a.id, True)]
        assert await backend.get(b.id) is None

    async def test_unique_key_held_while_scheduled_and_running(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        [sched] = await add(backend, new_job(unique_key="s", run_at=clock.now() + 10))
        [run] = await add(backend, new_job(unique_key="r"))
        await take_one(backend)

        again = await backend.enqueue([new_job(unique_key="s"), new_job(unique_key="r")])

        assert [(r.id, r.existing) for r in again] == [(sched, True), (run, True)]

    async def test_unique_key_freed_after_success(self, backend: Backend) -> None:
        [first] = await add(backend, new_job(unique_key="k"))
        _, lease = await take_one(backend)
        assert await backend.complete(lease, None)

        [result] = await backend.enqueue([new_job(unique_key="k")])

        assert result.existing is False and result.id != first

    async def test_unique_key_freed_after_dead(self, backend: Backend) -> None:
        [dead_id] = await add(backend, new_job(unique_key="dead"))
        _, lease = await take_one(backend)
        assert await backend.fail(lease, Failure("boom"))

        [again] = await backend.enqueue([new_job(unique_key="dead")])

        assert again.existing is False and again.id != dead_id

    @requires(Admin)
    async def test_unique_key_freed_after_cancel(self, backend: Backend) -> None:
        [gone_id] = await add(backend, new_job(unique_key="gone"))
        assert await backend.admin.cancel(gone_id)

        [again] = await backend.enqueue([new_job(unique_key="gone")])

        assert again.existing is False and again.id != gone_id

    async def test_lease_length_comes_from_claim(self, backend: Backend, clock: FakeClock) -> None:
        await add(backend, new_job())

        [job] = await take(backend)

        assert job.lease_expires_at == clock.now() + LEASE
