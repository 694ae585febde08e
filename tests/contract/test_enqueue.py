"""Producing jobs: what enqueue stores, delays, bulk order and unique keys."""

from __future__ import annotations

import asyncio

from conveyor.backends.base import Backend
from conveyor.clock import FakeClock
from conveyor.job import Failure, NewJob, Priority, State

from .support import LEASE, add, new_job, take, take_one


async def test_enqueue_then_get_round_trips_every_field(backend: Backend, clock: FakeClock):
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
    assert job.lease_token is job.lease_expires_at is job.worker_id is None
    assert job.started_at is job.finished_at is job.failed_at is None
    assert job.last_error is job.traceback is job.result is None


async def test_get_unknown_id_is_none(backend: Backend):
    assert await backend.get("nope") is None
    assert await asyncio.to_thread(backend.get_sync, "nope") is None


async def test_enqueue_sync_and_get_sync_from_a_thread(backend: Backend):
    new = new_job(queue="q")

    [result] = await asyncio.to_thread(backend.enqueue_sync, [new])
    job = await asyncio.to_thread(backend.get_sync, result.id)

    assert job is not None and job.state is State.READY and job.payload == new.payload
    assert (await backend.get(new.id)) == job


async def test_bulk_enqueue_keeps_order(backend: Backend):
    jobs = [new_job() for _ in range(20)]

    ids = await add(backend, *jobs)
    claimed = await take(backend)

    assert ids == [j.id for j in jobs]
    assert [j.id for j in claimed] == ids


async def test_delayed_job_is_scheduled_until_due(backend: Backend, clock: FakeClock):
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


async def test_a_delay_is_due_that_long_after_the_stores_now(backend: Backend, clock: FakeClock):
    # Given jobs handed over with a delay (enqueue(delay=)), not a time
    [later, now, timed] = await add(
        backend,
        new_job(delay=42.5),
        new_job(delay=0.0),
        new_job(run_at=clock.now() + 5, delay=1000.0),  # an explicit run_at wins
    )

    # Then each is due on the store's own clock: now + delay, or its run_at
    got = {i: await backend.get(i) for i in (later, now, timed)}
    assert got[later] is not None and got[later].state is State.SCHEDULED
    assert got[later].run_at == clock.now() + 42.5 == got[later].created_at + 42.5
    assert got[now] is not None and got[now].state is State.READY
    assert got[now].run_at == clock.now()
    assert got[timed] is not None and got[timed].run_at == clock.now() + 5
    clock.advance(42.4)
    assert {j.id for j in await take(backend, limit=10)} == {now, timed}
    clock.advance(0.1)
    assert [j.id for j in await take(backend)] == [later]


async def test_run_at_in_the_past_is_ready_at_once(backend: Backend, clock: FakeClock):
    [job_id] = await add(backend, new_job(run_at=clock.now() - 5))

    assert (await backend.get(job_id)).state is State.READY  # type: ignore[union-attr]


async def test_unique_key_returns_the_active_job(backend: Backend):
    first = new_job(unique_key="k")
    [a] = await backend.enqueue([first])
    [b, c] = await backend.enqueue([new_job(unique_key="k"), new_job(unique_key="other")])
    [d] = await asyncio.to_thread(backend.enqueue_sync, [new_job(unique_key="k")])

    assert (a.existing, b.existing, c.existing, d.existing) == (False, True, False, True)
    assert a.id == b.id == d.id == first.id
    assert len(await take(backend)) == 2


async def test_unique_key_within_one_batch(backend: Backend):
    a, b = new_job(unique_key="k"), new_job(unique_key="k")

    results = await backend.enqueue([a, b])

    assert [(r.id, r.existing) for r in results] == [(a.id, False), (a.id, True)]
    assert await backend.get(b.id) is None


async def test_unique_key_held_while_scheduled_and_running(backend: Backend, clock: FakeClock):
    [sched] = await add(backend, new_job(unique_key="s", run_at=clock.now() + 10))
    [run] = await add(backend, new_job(unique_key="r"))
    await take_one(backend)

    again = await backend.enqueue([new_job(unique_key="s"), new_job(unique_key="r")])

    assert [(r.id, r.existing) for r in again] == [(sched, True), (run, True)]


async def test_unique_key_freed_after_success(backend: Backend):
    [first] = await add(backend, new_job(unique_key="k"))
    _, lease = await take_one(backend)
    assert await backend.complete(lease, None)

    [result] = await backend.enqueue([new_job(unique_key="k")])

    assert result.existing is False and result.id != first


async def test_unique_key_freed_after_dead_and_cancel(backend: Backend):
    [dead_id, gone_id] = await add(backend, new_job(unique_key="dead"), new_job(unique_key="gone"))
    _, lease = await take_one(backend)
    assert await backend.fail(lease, Failure("boom"))
    assert await backend.cancel(gone_id)

    again = await backend.enqueue([new_job(unique_key="dead"), new_job(unique_key="gone")])

    assert [r.existing for r in again] == [False, False]
    assert dead_id not in {r.id for r in again}


async def test_lease_length_comes_from_claim(backend: Backend, clock: FakeClock):
    await add(backend, new_job())

    [job] = await take(backend)

    assert job.lease_expires_at == clock.now() + LEASE
