"""``claim(..., wait=)``: wakes soon after work arrives, else returns nothing after the wait.

These use real time with small bounds: the waits are what is under test. Each bound is a
deadline on a condition, far above the expected latency. The short sleeps before an enqueue
only let the claim find nothing and start waiting, so the wake-up path is the one taken;
every assertion holds without them.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from conveyor.backends.base import Backend
from conveyor.clock import FakeClock
from conveyor.job import JobRecord, Lease, Routing, State
from conveyor.testing.contract.jobs import EVERYTHING, LEASE, add, new_job, stored, take

#: Far longer than any wake-up should take; a test that hits it has found a lost wake-up.
WAIT = 10.0
#: The deadline for waking, well under `WAIT` so a missed wake-up fails the test.
PROMPT = 3.0
#: Long enough for a claim to find nothing and start waiting.
SETTLE = 0.05


async def waiting(backend: Backend, routing: Routing = EVERYTHING) -> asyncio.Task[list[JobRecord]]:
    """A claim (of up to 10 jobs) waiting up to `WAIT` for work, started and settled."""
    task = asyncio.create_task(backend.claim("waiter", routing, 10, LEASE, wait=WAIT))
    await asyncio.sleep(SETTLE)
    return task


async def cancelled(task: asyncio.Task[list[JobRecord]]) -> list[JobRecord] | None:
    """Cancel ``task`` and wait for it: ``None`` if it was cancelled, else what it claimed."""
    task.cancel()
    try:
        return await asyncio.wait_for(task, PROMPT)
    except asyncio.CancelledError:
        return None


async def check_race(backend: Backend, job_id: str, claimed: list[JobRecord] | None) -> None:
    """After a claim cancelled while ``job_id`` arrived: the job is either what the claim
    returned before the cancellation landed (then it is completed here, as its caller
    would), or ready, unleased, with its attempt unused."""
    if claimed:
        [job] = claimed
        assert job.id == job_id and job.lease_token is not None
        assert await backend.complete(Lease(job.id, job.lease_token), None)
        return
    job = await stored(backend, job_id)
    assert job.state is State.READY, f"a cancelled claim left job {job_id} {job.state.value}"
    assert job.lease_token is None and job.attempts == 0


@pytest.mark.asyncio
class TestClaimWait:
    """Core: every store runs these."""

    async def test_wakes_after_an_enqueue_from_another_handle(
        self, backend: Backend, other: Backend
    ) -> None:
        waiter = await waiting(backend)

        [job_id] = await add(other, new_job())

        claimed = await asyncio.wait_for(waiter, PROMPT)
        assert [j.id for j in claimed] == [job_id]
        assert (await stored(backend, job_id)).worker_id == "waiter"

    async def test_wakes_after_a_sync_enqueue_from_another_handle(
        self, backend: Backend, other: Backend
    ) -> None:
        waiter = await waiting(backend)

        [result] = await asyncio.to_thread(other.enqueue_sync, [new_job()])

        assert [j.id for j in await asyncio.wait_for(waiter, PROMPT)] == [result.id]

    async def test_returns_ready_work_at_once(self, backend: Backend) -> None:
        [job_id] = await add(backend, new_job())

        claimed = await asyncio.wait_for(backend.claim("w", EVERYTHING, 10, LEASE, wait=WAIT), 1)

        assert [j.id for j in claimed] == [job_id]

    async def test_returns_nothing_after_the_wait_when_nothing_arrives(
        self, backend: Backend
    ) -> None:
        begin = time.monotonic()

        claimed = await asyncio.wait_for(backend.claim("w", EVERYTHING, 10, LEASE, wait=0.2), 3)

        assert claimed == []
        assert time.monotonic() - begin >= 0.15

    async def test_a_wait_of_zero_returns_at_once(self, backend: Backend) -> None:
        assert await asyncio.wait_for(backend.claim("w", EVERYTHING, 10, LEASE, wait=0), 1) == []

    async def test_a_claim_of_no_jobs_does_not_wait(self, backend: Backend) -> None:
        # Ready work a claim of no jobs cannot take must not keep it spinning until the wait
        # is over: it returns at once, leasing nothing.
        [job_id] = await add(backend, new_job())
        begin = time.monotonic()

        assert await asyncio.wait_for(backend.claim("w", EVERYTHING, 0, LEASE, wait=WAIT), 1) == []

        assert time.monotonic() - begin < 1
        assert (await stored(backend, job_id)).state is State.READY

    async def test_work_for_another_routing_does_not_end_the_wait(
        self, backend: Backend, other: Backend
    ) -> None:
        waiter = await waiting(backend, Routing(queues=("mail",)))

        await add(other, new_job(queue="jobs"))
        await asyncio.sleep(0.3)
        assert not waiter.done()
        [mail] = await add(other, new_job(queue="mail"))

        assert [j.id for j in await asyncio.wait_for(waiter, PROMPT)] == [mail]

    async def test_returns_the_job_once_a_scheduled_job_falls_due(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        # Given a job due 0.2 s from now on the store's clock, and a claim waiting long
        [job_id] = await add(backend, new_job(run_at=clock.now() + 0.2))
        waiter = await waiting(backend)

        # When more than 0.2 s pass in real time, the job is still not due on the store's
        # clock (the one that decides), so the claim goes on waiting
        await asyncio.sleep(0.3)
        assert not waiter.done()

        # Then once the store's clock reaches it, the claim returns it, long before the wait
        clock.advance(0.2)
        assert [j.id for j in await asyncio.wait_for(waiter, PROMPT)] == [job_id]

    async def test_a_cancelled_claim_leaves_the_store_usable(
        self, backend: Backend, other: Backend
    ) -> None:
        # Given a claim cancelled while it waits
        assert await cancelled(await waiting(backend)) is None

        # Then jobs enqueued afterwards are claimed, at once or by a waiting claim
        [first] = await add(other, new_job())
        assert [j.id for j in await take(backend)] == [first]
        waiter = await waiting(backend)
        [second] = await add(other, new_job())
        assert [j.id for j in await asyncio.wait_for(waiter, PROMPT)] == [second]

    async def test_a_job_arriving_as_the_claim_is_cancelled_is_not_left_leased(
        self, backend: Backend, other: Backend
    ) -> None:
        # The cancellation lands at a different moment each round: before the wake-up,
        # during the claim it triggers, or after the claim returned.
        for pause in (None, 0.0, 0.001, 0.003, 0.01, 0.03):
            waiter = await waiting(backend)
            [job_id] = await add(other, new_job())
            if pause is not None:
                await asyncio.sleep(pause)

            await check_race(backend, job_id, await cancelled(waiter))

            # Whatever the moment, the job is claimed once more at most: by the next claim
            # if the cancelled one gave it back, and then nothing is left
            if (await stored(backend, job_id)).state is State.READY:
                assert [j.id for j in await take(backend)] == [job_id]
            assert await take(backend) == []

    async def test_a_cancelled_claim_carries_nothing_to_the_next_call(
        self, backend: Backend, other: Backend
    ) -> None:
        # Given a claim for queue "a", cancelled just as an "a" job arrives
        waiter = await waiting(backend, Routing(queues=("a",)))
        [a_job] = await add(other, new_job(queue="a"))
        await check_race(backend, a_job, await cancelled(waiter))

        # When the same handle then claims for queue "b", waiting
        [b_job] = await add(other, new_job(queue="b"))
        claimed = await backend.claim("w", Routing(queues=("b",)), 10, LEASE, wait=WAIT)

        # Then it gets only its own routing's job; the "a" job was not kept for it
        assert [j.id for j in claimed] == [b_job]
