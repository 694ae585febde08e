"""Rate windows, concurrency slots (`Limits`) and `defer` (core): the store's side of limits."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.backends.base import Backend
from conveyor.backends.capabilities import Limits
from conveyor.clock import FakeClock
from conveyor.job import Lease, State
from conveyor.testing.contract.fixtures import requires
from conveyor.testing.contract.jobs import add, new_job, stored, take, take_one


@pytest.mark.asyncio
@requires(Limits)
class TestLimits:
    """Rate windows and concurrency slots, for stores that keep them (`Limits`)."""

    # -- rate windows ----------------------------------------------------------------------
    async def test_a_window_grants_limit_starts_then_says_how_long_to_wait(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        # Given a window of 3 starts per 10 seconds, taken at t=0, 1 and 2
        for _ in range(3):
            assert await backend.limits.rate_acquire("api", 3, 10.0) == 0.0
            clock.advance(1)

        # When a fourth start is asked for at t=3
        wait = await backend.limits.rate_acquire("api", 3, 10.0)

        # Then it is refused until the first start (t=0) leaves the window at t=10
        assert wait == pytest.approx(7.0)
        clock.advance(6.5)
        assert await backend.limits.rate_acquire("api", 3, 10.0) == pytest.approx(0.5)
        clock.advance(0.5)
        assert await backend.limits.rate_acquire("api", 3, 10.0) == 0.0
        # and the next slot frees when the start at t=1 leaves the window
        assert await backend.limits.rate_acquire("api", 3, 10.0) == pytest.approx(1.0)

    async def test_a_refused_start_is_not_recorded(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        assert await backend.limits.rate_acquire("k", 1, 1.0) == 0.0
        for _ in range(5):
            assert await backend.limits.rate_acquire("k", 1, 1.0) > 0
        clock.advance(1.0)
        # Only the one granted start counted: exactly one period later there is room again.
        assert await backend.limits.rate_acquire("k", 1, 1.0) == 0.0

    async def test_windows_are_independent_by_key(self, backend: Backend) -> None:
        assert await backend.limits.rate_acquire("account:1", 1, 60.0) == 0.0
        assert await backend.limits.rate_acquire("account:2", 1, 60.0) == 0.0
        assert await backend.limits.rate_acquire("account:1", 1, 60.0) > 0

    async def test_concurrent_acquirers_never_exceed_the_limit(
        self, backend: Backend, other: Backend
    ) -> None:
        handles = [backend, other] * 10
        waits = await asyncio.gather(*(h.limits.rate_acquire("shared", 7, 60.0) for h in handles))
        assert sum(1 for w in waits if w == 0.0) == 7
        assert all(w > 0 for w in waits if w != 0.0)

    # -- concurrency slots -----------------------------------------------------------------
    async def test_slots_are_limited_and_reentrant(self, backend: Backend) -> None:
        assert await backend.limits.slot_acquire("account:1", "job-a", 2, 30.0)
        assert await backend.limits.slot_acquire("account:1", "job-b", 2, 30.0)
        assert not await backend.limits.slot_acquire("account:1", "job-c", 2, 30.0)
        # a holder renewing its own slot is not a new slot
        assert await backend.limits.slot_acquire("account:1", "job-a", 2, 30.0)
        # other keys have their own slots
        assert await backend.limits.slot_acquire("account:2", "job-c", 2, 30.0)

    async def test_release_frees_a_slot_only_for_its_holder(
        self, backend: Backend, other: Backend
    ) -> None:
        assert await backend.limits.slot_acquire("k", "a", 1, 30.0)
        await other.limits.slot_release("k", "b")  # not a holder: nothing changes
        assert not await other.limits.slot_acquire("k", "b", 1, 30.0)
        await other.limits.slot_release("k", "a")
        assert await other.limits.slot_acquire("k", "b", 1, 30.0)
        await backend.limits.slot_release("never", "a")  # harmless

    async def test_an_expired_slot_is_free_and_renewal_keeps_it(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        # Given a slot whose holder renews it once, then dies
        assert await backend.limits.slot_acquire("k", "a", 1, 10.0)
        clock.advance(8)
        assert await backend.limits.slot_acquire("k", "a", 1, 10.0)
        clock.advance(8)
        assert not await backend.limits.slot_acquire("k", "b", 1, 10.0)

        # When its ttl passes after the last renewal
        clock.advance(2)

        # Then the slot goes to the next caller
        assert await backend.limits.slot_acquire("k", "b", 1, 10.0)

    async def test_concurrent_slot_takers_get_exactly_the_limit(
        self, backend: Backend, other: Backend
    ) -> None:
        handles = [backend, other] * 6
        got = await asyncio.gather(
            *(h.limits.slot_acquire("k", f"job-{i}", 3, 30.0) for i, h in enumerate(handles))
        )
        assert sum(got) == 3


@pytest.mark.asyncio
class TestDefer:
    """Core: what a task's limit or `RateLimited` does to its job, on every store."""

    async def test_defer_waits_in_storage_without_using_an_attempt(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        # Given a running job on its first attempt
        [job_id] = await add(backend, new_job(headers={"a": 1}))
        _, lease = await take_one(backend)

        # When it is deferred by 5 seconds with new headers
        assert await backend.defer(lease, 5.0, {"a": 1, "throttled": 1})

        # Then it waits, scheduled, with its attempt given back and its lease gone
        job = await backend.get(job_id)
        assert job is not None and job.state is State.SCHEDULED
        assert job.attempts == 0 and job.lease_token is None
        assert job.run_at == pytest.approx(clock.now() + 5.0)
        assert job.headers == {"a": 1, "throttled": 1}
        assert await take(backend) == []

        # And once due it is claimed again as attempt 1
        clock.advance(5.0)
        again, _ = await take_one(backend)
        assert again.id == job_id and again.attempts == 1

    async def test_defer_without_delay_is_ready_at_once_and_keeps_headers(
        self, backend: Backend
    ) -> None:
        [job_id] = await add(backend, new_job(headers={"x": "y"}))
        _, lease = await take_one(backend)
        assert await backend.defer(lease, 0.0)
        job = await backend.get(job_id)
        assert job is not None and job.state is State.READY and job.headers == {"x": "y"}

    async def test_defer_with_a_stale_lease_is_fenced(self, backend: Backend) -> None:
        [job_id] = await add(backend, new_job())
        await take_one(backend)
        before = await stored(backend, job_id)

        assert not await backend.defer(Lease(job_id, "0" * 32), 1.0)

        assert await backend.get(job_id) == before
        assert before.state is State.RUNNING

    async def test_a_deferred_unique_job_keeps_its_key(self, backend: Backend) -> None:
        [job_id] = await add(backend, new_job(unique_key="u"))
        _, lease = await take_one(backend)
        assert await backend.defer(lease, 3.0)
        [dup] = await backend.enqueue([new_job(unique_key="u")])
        assert dup.existing and dup.id == job_id
