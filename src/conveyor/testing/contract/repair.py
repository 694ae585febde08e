"""Reading and repairing: query, stats, cancel, retry_dead and purge."""

from __future__ import annotations

import pytest

from conveyor.backends.base import Backend
from conveyor.backends.capabilities import Admin
from conveyor.clock import FakeClock
from conveyor.job import Failure, JobQuery, Lease, Priority, QueueStats, State
from conveyor.testing.contract.fixtures import requires
from conveyor.testing.contract.jobs import LEASE, add, new_job, stored, take, take_one


async def kill(backend: Backend, *job_ids: str) -> None:
    """Claim and dead-letter exactly these ready jobs."""
    for job in await take(backend):
        lease = Lease(job.id, job.lease_token or "")
        if job.id in job_ids:
            assert await backend.fail(lease, Failure("boom"))
        else:
            assert await backend.release(lease)


@pytest.mark.asyncio
@requires(Admin)
class TestRepair:
    """Listing, counting and repairing jobs: for stores with `Admin`."""

    async def test_cancel_active_jobs_only(self, backend: Backend, clock: FakeClock) -> None:
        running, done, ready, sched = await add(
            backend, new_job(), new_job(), new_job(), new_job(run_at=clock.now() + 9)
        )
        await take_one(backend)  # FIFO: `running`
        _, lease = await take_one(backend)  # then `done`
        assert await backend.complete(lease, None)
        clock.advance(1)

        assert [
            await backend.admin.cancel(i) for i in (sched, ready, running, done, "missing")
        ] == [
            True,
            True,
            True,
            False,
            False,
        ]
        for job_id in (sched, ready, running):
            job = await backend.get(job_id)
            assert job is not None and job.state is State.CANCELLED
            assert job.finished_at == job.updated_at == clock.now()
        assert await backend.admin.cancel(sched) is False
        assert await take(backend) == []

    async def test_retry_dead_one(self, backend: Backend, clock: FakeClock) -> None:
        a, b = await add(backend, new_job(), new_job())
        await kill(backend, a, b)
        clock.advance(5)

        assert await backend.admin.retry_dead([a, "missing"]) == 1

        job = await backend.get(a)
        assert job is not None and job.state is State.READY
        assert (job.attempts, job.recoveries, job.finished_at) == (0, 0, None)
        assert job.run_at == job.updated_at == clock.now()
        assert job.last_error == "boom" and job.failed_at is not None  # history is kept
        assert (await stored(backend, b)).state is State.DEAD
        [again] = await take(backend)
        assert again.id == a and again.attempts == 1

    async def test_retry_dead_all_and_only_dead(self, backend: Backend, clock: FakeClock) -> None:
        a, b, keep = await add(backend, new_job(), new_job(), new_job(run_at=clock.now() + 100))
        await kill(backend, a, b)

        assert await backend.admin.retry_dead() == 2
        assert await backend.admin.retry_dead() == 0
        assert (await stored(backend, keep)).state is State.SCHEDULED

    async def test_retry_dead_resets_recoveries(self, backend: Backend, clock: FakeClock) -> None:
        [job_id] = await add(backend, new_job())
        await take(backend)
        clock.advance(LEASE)
        await backend.recover(max_recoveries=1)

        assert await backend.admin.retry_dead([job_id]) == 1
        job = await backend.get(job_id)
        assert job is not None and (job.state, job.recoveries, job.attempts) == (State.READY, 0, 0)

    async def test_retry_dead_respects_a_held_unique_key(self, backend: Backend) -> None:
        # Given a dead job whose unique key is now held by a newer active job
        [old] = await add(backend, new_job(unique_key="k"))
        await kill(backend, old)
        [new] = await add(backend, new_job(unique_key="k"))

        # Then retrying the dead one is skipped: it would run the same work twice
        assert await backend.admin.retry_dead([old]) == 0
        assert (await stored(backend, old)).state is State.DEAD

        # Once the newer job is final, the old one may be retried and takes the key back
        _, lease = await take_one(backend)
        assert lease.job_id == new
        assert await backend.complete(lease, None)
        assert await backend.admin.retry_dead() == 1
        [dup] = await backend.enqueue([new_job(unique_key="k")])
        assert dup.existing and dup.id == old

    async def test_retry_dead_all_with_two_dead_sharing_a_key(self, backend: Backend) -> None:
        [a] = await add(backend, new_job(unique_key="k"))
        await kill(backend, a)
        [b] = await add(backend, new_job(unique_key="k"))
        await kill(backend, b)

        # Only one of them may hold the key again: the older one, retried first.
        assert await backend.admin.retry_dead() == 1
        assert (await stored(backend, a)).state is State.READY
        assert (await stored(backend, b)).state is State.DEAD

    async def test_purge_only_final_states(self, backend: Backend, clock: FakeClock) -> None:
        ok, dead, gone, ready, sched = await add(
            backend, new_job(), new_job(), new_job(), new_job(), new_job(run_at=clock.now() + 9)
        )
        _, lease = await take_one(backend)
        assert await backend.complete(lease, None)
        await kill(backend, dead)
        assert await backend.admin.cancel(gone)
        _, running = await take_one(backend)
        assert running.job_id == ready

        everything = tuple(State)
        assert await backend.admin.purge(everything) == 3

        for job_id in (ok, dead, gone):
            assert await backend.get(job_id) is None
        assert {(await stored(backend, i)).state for i in (ready, sched)} == {
            State.RUNNING,
            State.SCHEDULED,
        }

    async def test_purge_by_state_and_age_on_the_stores_clock(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        early, late, dead = await add(backend, new_job(), new_job(), new_job())
        _, lease = await take_one(backend)
        assert await backend.complete(lease, None)
        clock.advance(100)
        _, lease = await take_one(backend)
        assert await backend.complete(lease, None)
        await kill(backend, dead)
        clock.advance(10)

        # An age counts back from the store's now: 110 s and 10 s ago, so only the early one
        assert await backend.admin.purge([State.SUCCEEDED], older_than=110) == 0
        assert await backend.admin.purge([State.SUCCEEDED], older_than=50) == 1
        assert await backend.get(early) is None
        assert await backend.get(late) is not None
        assert await backend.admin.purge([State.CANCELLED]) == 0
        assert await backend.admin.purge([State.SUCCEEDED, State.DEAD]) == 2
        assert await backend.admin.purge([]) == 0

    async def test_stats_by_queue_priority_and_state(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        await add(
            backend,
            new_job(queue="mail", priority=Priority.HIGH),
            new_job(queue="mail", priority=Priority.HIGH),
            new_job(queue="mail", priority=Priority.LOW, run_at=clock.now() + 10),
            new_job(queue="jobs", run_at=clock.now() + 5),
            new_job(queue="jobs", run_at=clock.now() + 50),
        )
        await take_one(backend)
        clock.advance(5)  # the first jobs job is now due: it counts as ready

        stats = await backend.admin.stats()

        assert stats == [
            QueueStats("jobs", Priority.NORMAL, {State.READY: 1, State.SCHEDULED: 1}),
            QueueStats("mail", Priority.HIGH, {State.READY: 1, State.RUNNING: 1}),
            QueueStats("mail", Priority.LOW, {State.SCHEDULED: 1}),
        ]

    async def test_stats_of_an_empty_store(self, backend: Backend) -> None:
        assert await backend.admin.stats() == []

    async def test_query_newest_first_with_filters(self, backend: Backend) -> None:
        ids = await add(
            backend,
            new_job(queue="a", task="t1"),
            new_job(queue="b", task="t1"),
            new_job(queue="a", task="t2"),
            new_job(queue="a", task="t1"),
        )
        _, lease = await take_one(backend)  # ids[0] runs
        assert lease.job_id == ids[0]

        def listed(jobs: list) -> list[str]:  # type: ignore[type-arg]
            return [j.id for j in jobs]

        assert listed(await backend.admin.query(JobQuery())) == ids[::-1]
        assert listed(await backend.admin.query(JobQuery(queue="a"))) == [ids[3], ids[2], ids[0]]
        assert listed(await backend.admin.query(JobQuery(task="t1", queue="a"))) == [ids[3], ids[0]]
        assert listed(await backend.admin.query(JobQuery(states=(State.RUNNING,)))) == [ids[0]]
        ready_or_running = JobQuery(states=(State.READY, State.RUNNING), queue="b")
        assert listed(await backend.admin.query(ready_or_running)) == [ids[1]]
        assert await backend.admin.query(JobQuery(states=())) == []
        assert await backend.admin.query(JobQuery(queue="none")) == []

    async def test_query_limit_and_offset(self, backend: Backend) -> None:
        ids = await add(backend, *[new_job() for _ in range(7)])
        newest_first = ids[::-1]

        pages = [
            [j.id for j in await backend.admin.query(JobQuery(limit=3, offset=offset))]
            for offset in (0, 3, 6, 9)
        ]

        assert pages == [newest_first[0:3], newest_first[3:6], newest_first[6:], []]

    async def test_query_returns_full_records(self, backend: Backend) -> None:
        [job_id] = await add(backend, new_job(headers={"h": 1}))

        [listed] = await backend.admin.query(JobQuery())

        assert listed == await backend.get(job_id)
