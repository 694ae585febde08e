"""The scheduler's calls: named leader leases and atomic tick records, on every backend."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.backends.base import Backend
from conveyor.backends.capabilities import Scheduling
from conveyor.clock import FakeClock
from conveyor.job import State
from conveyor.testing.contract.fixtures import requires
from conveyor.testing.contract.jobs import new_job, take

LEADER = "conveyor:scheduler"


@pytest.mark.asyncio
@requires(Scheduling)
class TestScheduling:
    """The scheduler's calls: for stores with `Scheduling`."""

    async def test_a_free_lease_is_taken_and_others_are_refused(
        self, backend: Backend, other: Backend
    ) -> None:
        assert await backend.scheduling.acquire_lease(LEADER, "a", 10.0)
        assert not await other.scheduling.acquire_lease(LEADER, "b", 10.0)
        # The holder renews at will.
        assert await backend.scheduling.acquire_lease(LEADER, "a", 10.0)

    async def test_leases_are_independent_by_name(self, backend: Backend) -> None:
        assert await backend.scheduling.acquire_lease("one", "a", 10.0)
        assert await backend.scheduling.acquire_lease("two", "b", 10.0)

    async def test_an_expired_lease_goes_to_the_next_caller(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        # Given a lease that its holder stops renewing
        assert await backend.scheduling.acquire_lease(LEADER, "a", 10.0)
        clock.advance(9.5)
        assert not await backend.scheduling.acquire_lease(LEADER, "b", 10.0)

        # When its ttl passes on the backend's clock
        clock.advance(0.5)

        # Then another owner takes it, and the old holder cannot renew it any more
        assert await backend.scheduling.acquire_lease(LEADER, "b", 10.0)
        assert not await backend.scheduling.acquire_lease(LEADER, "a", 10.0)

    async def test_renewing_pushes_the_expiry_forward(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        assert await backend.scheduling.acquire_lease(LEADER, "a", 10.0)
        clock.advance(8)
        assert await backend.scheduling.acquire_lease(LEADER, "a", 10.0)
        clock.advance(8)
        assert not await backend.scheduling.acquire_lease(LEADER, "b", 10.0)

    async def test_release_frees_the_lease_only_for_its_holder(self, backend: Backend) -> None:
        assert await backend.scheduling.acquire_lease(LEADER, "a", 10.0)
        await backend.scheduling.release_lease(LEADER, "b")  # not the holder: nothing changes
        assert not await backend.scheduling.acquire_lease(LEADER, "b", 10.0)
        await backend.scheduling.release_lease(LEADER, "a")
        assert await backend.scheduling.acquire_lease(LEADER, "b", 10.0)
        await backend.scheduling.release_lease("never-taken", "a")  # harmless

    async def test_concurrent_acquirers_get_exactly_one_leader(
        self, backend: Backend, other: Backend
    ) -> None:
        handles = [backend, other] * 4
        won = await asyncio.gather(
            *(h.scheduling.acquire_lease(LEADER, f"owner-{i}", 10.0) for i, h in enumerate(handles))
        )
        assert sum(won) == 1

    async def test_schedule_state_starts_empty(self, backend: Backend) -> None:
        assert await backend.scheduling.schedule_state(["a", "b"]) == {"a": None, "b": None}
        assert await backend.scheduling.schedule_state([]) == {}

    async def test_enqueue_tick_enqueues_and_records(
        self, backend: Backend, other: Backend
    ) -> None:
        job = new_job(task="app.prune", unique_key="cron:prune:t1")

        results = await backend.scheduling.enqueue_tick("prune", 1_700_000_100.0, [job])

        assert results is not None and [r.id for r in results] == [job.id]
        assert not results[0].existing
        assert await other.scheduling.schedule_state(["prune", "x"]) == {
            "prune": 1_700_000_100.0,
            "x": None,
        }
        stored = await other.get(job.id)
        assert stored is not None and stored.task == "app.prune"
        assert stored.unique_key == "cron:prune:t1"

    async def test_a_tick_not_newer_than_the_last_is_refused(
        self, backend: Backend, other: Backend
    ) -> None:
        # Given tick 200 was recorded
        assert await backend.scheduling.enqueue_tick("e", 200.0, [new_job()]) is not None

        # When the same tick, or an older one, is offered again (another scheduler, late)
        again = await other.scheduling.enqueue_tick("e", 200.0, [new_job()])
        older = await other.scheduling.enqueue_tick("e", 100.0, [new_job()])

        # Then nothing is enqueued and the record stays
        assert again is None and older is None
        assert len(await take(backend)) == 1
        assert await backend.scheduling.schedule_state(["e"]) == {"e": 200.0}
        # A newer tick goes through.
        assert await other.scheduling.enqueue_tick("e", 300.0, [new_job()]) is not None
        assert await backend.scheduling.schedule_state(["e"]) == {"e": 300.0}

    async def test_entries_are_recorded_separately(self, backend: Backend) -> None:
        assert await backend.scheduling.enqueue_tick("a", 100.0, [new_job()]) is not None
        assert await backend.scheduling.enqueue_tick("b", 100.0, [new_job()]) is not None
        assert await backend.scheduling.schedule_state(["a", "b"]) == {"a": 100.0, "b": 100.0}

    async def test_racing_ticks_enqueue_once(self, backend: Backend, other: Backend) -> None:
        # Given several schedulers offering the same tick at once
        handles = [backend, other] * 3
        jobs = [new_job(unique_key=f"cron:race:{i}") for i in range(len(handles))]

        results = await asyncio.gather(
            *(
                h.scheduling.enqueue_tick("race", 500.0, [j])
                for h, j in zip(handles, jobs, strict=True)
            )
        )

        # Then exactly one enqueued its job
        assert sum(r is not None for r in results) == 1
        assert len(await take(backend)) == 1

    async def test_a_held_unique_key_returns_the_existing_job(self, backend: Backend) -> None:
        first = new_job(unique_key="cron:k:1")
        [r1] = await backend.scheduling.enqueue_tick("k", 1.0, [first]) or []
        # A later tick whose key is still held (a rare clash) records the tick, adds no job.
        dup = new_job(unique_key="cron:k:1")
        [r2] = await backend.scheduling.enqueue_tick("k", 2.0, [dup]) or []
        assert (r2.id, r2.existing) == (r1.id, True)
        assert await backend.scheduling.schedule_state(["k"]) == {"k": 2.0}

    async def test_a_tick_job_due_later_is_scheduled(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        job = new_job(run_at=clock.now() + 60)
        assert await backend.scheduling.enqueue_tick("later", clock.now(), [job]) is not None
        stored = await backend.get(job.id)
        assert stored is not None and stored.state is State.SCHEDULED
