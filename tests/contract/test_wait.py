"""wait_for_work: wakes soon after work arrives from another handle, else times out.

These use real time with small bounds: the waits are what is under test. Each bound is a
deadline on a condition, far above the expected latency, never a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from conveyor.backends.base import Backend
from conveyor.clock import FakeClock
from conveyor.job import Routing

from .support import EVERYTHING, add, new_job, take

#: Far longer than any wake-up should take; a test that hits it has found a lost wake-up.
WAIT = 10.0
#: The deadline for waking, well under `WAIT` so a missed wake-up fails the test.
PROMPT = 3.0


async def started(backend: Backend, routing: Routing = EVERYTHING) -> asyncio.Task[None]:
    task = asyncio.create_task(backend.wait_for_work(routing, WAIT))
    await asyncio.sleep(0)  # let the waiter run up to its first suspension point
    return task


async def test_wakes_after_an_enqueue_from_another_handle(backend: Backend, other: Backend):
    waiter = await started(backend)

    await add(other, new_job())

    await asyncio.wait_for(waiter, PROMPT)
    assert len(await take(backend)) == 1


async def test_wakes_after_a_sync_enqueue_from_another_handle(backend: Backend, other: Backend):
    waiter = await started(backend)

    await asyncio.to_thread(other.enqueue_sync, [new_job()])

    await asyncio.wait_for(waiter, PROMPT)


async def test_times_out_when_nothing_arrives(backend: Backend):
    begin = time.monotonic()

    await asyncio.wait_for(backend.wait_for_work(Routing(), 0.2), PROMPT)

    assert time.monotonic() - begin >= 0.15


async def test_zero_timeout_returns(backend: Backend):
    await asyncio.wait_for(backend.wait_for_work(Routing(), 0), PROMPT)


async def test_returns_when_a_scheduled_job_falls_due(backend: Backend, clock: FakeClock):
    # Given a job due 0.2 s from now on the backend's clock, and a long wait
    await add(backend, new_job(run_at=clock.now() + 0.2))

    # Then the wait ends around when the job falls due, not after the full timeout
    await asyncio.wait_for(backend.wait_for_work(Routing(), WAIT), PROMPT)


async def test_a_waiter_can_be_cancelled(backend: Backend):
    waiter = await started(backend)

    waiter.cancel()

    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(waiter, PROMPT)
    assert waiter.cancelled() or waiter.done()
    # The backend is still usable afterwards.
    await add(backend, new_job())
    assert len(await take(backend)) == 1
