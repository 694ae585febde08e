"""What the dashboard and alerts steer and read: pause/resume, delete, oldest wait, history."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.backends.base import Backend
from conveyor.clock import FakeClock
from conveyor.job import Failure, HistoryPoint, Lease, Routing, State

from .support import add, new_job, take, take_one


# -- pause and resume ------------------------------------------------------------------------
async def test_a_paused_queue_is_not_claimed_until_resumed(backend: Backend, other: Backend):
    # Given ready jobs in two queues, one of them paused
    [mail] = await add(backend, new_job(queue="mail"))
    [jobs] = await add(backend, new_job(queue="jobs"))
    await backend.pause_queue("mail")
    assert await other.paused_queues() == ["mail"]

    # Then only the other queue's job is claimed, even by another handle
    assert [j.id for j in await take(other)] == [jobs]
    assert await take(other) == []
    # and enqueueing into the paused queue still works
    [later] = await add(backend, new_job(queue="mail"))

    # When it is resumed, its jobs are claimed in order
    await other.resume_queue("mail")
    assert await backend.paused_queues() == []
    assert [j.id for j in await take(backend)] == [mail, later]


async def test_pausing_is_idempotent_and_resuming_an_unpaused_queue_is_harmless(
    backend: Backend,
):
    await backend.pause_queue("q")
    await backend.pause_queue("q")
    await backend.pause_queue("a")
    assert await backend.paused_queues() == ["a", "q"]
    await backend.resume_queue("never-paused")
    await backend.resume_queue("q")
    await backend.resume_queue("q")
    assert await backend.paused_queues() == ["a"]


async def test_a_paused_queue_does_not_wake_a_waiting_worker(backend: Backend, other: Backend):
    # Given a paused queue holding a ready job
    await backend.pause_queue("mail")
    await add(backend, new_job(queue="mail"))

    # Then a worker waiting for work sleeps through its whole timeout (no busy loop)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await other.wait_for_work(Routing(queues=("mail",)), 0.3)
    assert loop.time() - started >= 0.25

    # And resuming wakes a waiter well before its timeout
    waiter = asyncio.create_task(other.wait_for_work(Routing(queues=("mail",)), 10.0))
    await asyncio.sleep(0.2)
    await backend.resume_queue("mail")
    await asyncio.wait_for(waiter, 5.0)


# -- delete ---------------------------------------------------------------------------------------
async def test_delete_removes_only_final_jobs(backend: Backend):
    # Given a dead job, a succeeded job, a ready job and a running job
    ids = await add(backend, *(new_job(max_retries=0) for _ in range(4)))
    [a, b] = await take(backend, limit=2)
    assert a.lease_token and b.lease_token

    await backend.fail(Lease(a.id, a.lease_token), Failure("boom"))
    await backend.complete(Lease(b.id, b.lease_token), None)
    _, running = await take_one(backend)

    # When all of them (and one unknown id) are deleted
    deleted = await backend.delete([*ids, "missing"])

    # Then only the two final jobs are gone
    assert deleted == 2
    assert await backend.get(a.id) is None and await backend.get(b.id) is None
    left = {i for i in ids if await backend.get(i) is not None}
    assert left == {ids[2], ids[3]}
    assert (await backend.get(running.job_id)).state is State.RUNNING  # type: ignore[union-attr]


# -- oldest ready -------------------------------------------------------------------------------
async def test_oldest_ready_per_queue(backend: Backend, clock: FakeClock):
    t0 = clock.now()
    await add(backend, new_job(queue="a"))
    clock.advance(5)
    await add(backend, new_job(queue="a"), new_job(queue="b"))
    await add(backend, new_job(queue="c", run_at=t0 + 7))  # scheduled, due at t0+7
    await add(backend, new_job(queue="d", run_at=t0 + 100))  # not due
    await backend.pause_queue("b")

    oldest = await backend.oldest_ready()
    assert oldest == {"a": pytest.approx(t0), "b": pytest.approx(t0 + 5)}

    clock.advance(3)  # now t0+8: c's job is due and counts as ready
    oldest = await backend.oldest_ready()
    assert oldest["c"] == pytest.approx(t0 + 7)
    assert "d" not in oldest

    # a running job is not waiting any more
    await take(backend, Routing(queues=("a",)), limit=1)
    assert (await backend.oldest_ready())["a"] == pytest.approx(t0 + 5)


# -- throughput history ---------------------------------------------------------------------------
async def test_history_sums_points_and_reads_back_in_order(backend: Backend, other: Backend):
    m = 1_800_000_000 // 60 * 60
    await backend.record_history(
        [HistoryPoint(m, "default", 3, 1), HistoryPoint(m + 60, "mail", 2, 0)], keep=1e12
    )
    await other.record_history([HistoryPoint(m, "default", 4, 2)], keep=1e12)

    assert await backend.history(since=0) == [
        HistoryPoint(m, "default", 7, 3),
        HistoryPoint(m + 60, "mail", 2, 0),
    ]
    assert await backend.history(since=m + 1) == [HistoryPoint(m + 60, "mail", 2, 0)]


async def test_history_drops_minutes_older_than_keep(backend: Backend, clock: FakeClock):
    now_minute = int(clock.now()) // 60 * 60
    old = now_minute - 3600
    await backend.record_history([HistoryPoint(old, "q", 1, 0)], keep=1e12)
    await backend.record_history([HistoryPoint(now_minute, "q", 1, 0)], keep=1800)
    assert await backend.history(since=0) == [HistoryPoint(now_minute, "q", 1, 0)]


async def test_concurrent_history_writers_lose_nothing(backend: Backend, other: Backend):
    m = 1_800_000_000 // 60 * 60
    point = [HistoryPoint(m, "q", 1, 1)]
    await asyncio.gather(*(h.record_history(point, keep=1e12) for h in [backend, other] * 10))
    assert await backend.history(since=0) == [HistoryPoint(m, "q", 20, 20)]
