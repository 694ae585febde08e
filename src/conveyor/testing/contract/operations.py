"""What the dashboard and alerts steer and read: pause/resume, delete, oldest wait, history."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.backends.base import Backend
from conveyor.backends.capabilities import Admin, Telemetry
from conveyor.clock import FakeClock
from conveyor.job import Failure, HistoryPoint, Lease, Routing, State
from conveyor.testing.contract.fixtures import requires
from conveyor.testing.contract.jobs import LEASE, add, new_job, stored, take, take_one


@pytest.mark.asyncio
@requires(Admin)
class TestOperations:
    """Pause and resume, delete, oldest wait: for stores with `Admin`."""

    # -- pause and resume ------------------------------------------------------------------
    async def test_a_paused_queue_is_not_claimed_until_resumed(
        self, backend: Backend, other: Backend
    ) -> None:
        # Given ready jobs in two queues, one of them paused
        [mail] = await add(backend, new_job(queue="mail"))
        [jobs] = await add(backend, new_job(queue="jobs"))
        await backend.admin.pause_queue("mail")
        assert await other.admin.paused_queues() == ["mail"]

        # Then only the other queue's job is claimed, even by another handle
        assert [j.id for j in await take(other)] == [jobs]
        assert await take(other) == []
        # and enqueueing into the paused queue still works
        [later] = await add(backend, new_job(queue="mail"))

        # When it is resumed, its jobs are claimed in order
        await other.admin.resume_queue("mail")
        assert await backend.admin.paused_queues() == []
        assert [j.id for j in await take(backend)] == [mail, later]

    async def test_pausing_is_idempotent_and_resuming_an_unpaused_queue_is_harmless(
        self,
        backend: Backend,
    ) -> None:
        await backend.admin.pause_queue("q")
        await backend.admin.pause_queue("q")
        await backend.admin.pause_queue("a")
        assert await backend.admin.paused_queues() == ["a", "q"]
        await backend.admin.resume_queue("never-paused")
        await backend.admin.resume_queue("q")
        await backend.admin.resume_queue("q")
        assert await backend.admin.paused_queues() == ["a"]

    async def test_a_paused_queue_does_not_wake_a_waiting_claim(
        self, backend: Backend, other: Backend
    ) -> None:
        # Given a paused queue holding a ready job
        await backend.admin.pause_queue("mail")
        [mail] = await add(backend, new_job(queue="mail"))
        routing = Routing(queues=("mail",))

        # Then a claim waiting for work sleeps through its whole wait and gets nothing
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await other.claim("w", routing, 10, LEASE, wait=0.3) == []
        assert loop.time() - started >= 0.25

        # And resuming wakes a waiting claim well before its wait is over, with the job
        waiter = asyncio.create_task(other.claim("w", routing, 10, LEASE, wait=10.0))
        await asyncio.sleep(0.2)
        await backend.admin.resume_queue("mail")
        assert [j.id for j in await asyncio.wait_for(waiter, 5.0)] == [mail]

    # -- delete ----------------------------------------------------------------------------
    async def test_delete_removes_only_final_jobs(self, backend: Backend) -> None:
        # Given a dead job, a succeeded job, a ready job and a running job
        ids = await add(backend, *(new_job(max_retries=0) for _ in range(4)))
        [a, b] = await take(backend, limit=2)
        assert a.lease_token and b.lease_token

        await backend.fail(Lease(a.id, a.lease_token), Failure("boom"))
        await backend.complete(Lease(b.id, b.lease_token), None)
        _, running = await take_one(backend)

        # When all of them (and one unknown id) are deleted
        deleted = await backend.admin.delete([*ids, "missing"])

        # Then only the two final jobs are gone
        assert deleted == 2
        assert await backend.get(a.id) is None and await backend.get(b.id) is None
        left = {i for i in ids if await backend.get(i) is not None}
        assert left == {ids[2], ids[3]}
        assert (await stored(backend, running.job_id)).state is State.RUNNING

    # -- oldest ready ----------------------------------------------------------------------
    async def test_oldest_ready_per_queue(self, backend: Backend, clock: FakeClock) -> None:
        t0 = clock.now()
        await add(backend, new_job(queue="a"))
        clock.advance(5)
        await add(backend, new_job(queue="a"), new_job(queue="b"))
        await add(backend, new_job(queue="c", run_at=t0 + 7))  # scheduled, due at t0+7
        await add(backend, new_job(queue="d", run_at=t0 + 100))  # not due
        await backend.admin.pause_queue("b")

        oldest = await backend.admin.oldest_ready()
        assert oldest == {"a": pytest.approx(t0), "b": pytest.approx(t0 + 5)}

        clock.advance(3)  # now t0+8: c's job is due and counts as ready
        oldest = await backend.admin.oldest_ready()
        assert oldest["c"] == pytest.approx(t0 + 7)
        assert "d" not in oldest

        # a running job is not waiting any more
        await take(backend, Routing(queues=("a",)), limit=1)
        assert (await backend.admin.oldest_ready())["a"] == pytest.approx(t0 + 5)


@pytest.mark.asyncio
@requires(Telemetry)
class TestHistory:
    """Per-minute throughput history: for stores with `Telemetry`."""

    async def test_history_sums_points_and_reads_back_in_order(
        self, backend: Backend, other: Backend
    ) -> None:
        m = 1_800_000_000 // 60 * 60
        await backend.telemetry.record_history(
            [HistoryPoint(m, "default", 3, 1), HistoryPoint(m + 60, "mail", 2, 0)], keep=1e12
        )
        await other.telemetry.record_history([HistoryPoint(m, "default", 4, 2)], keep=1e12)

        assert await backend.telemetry.history(since=0) == [
            HistoryPoint(m, "default", 7, 3),
            HistoryPoint(m + 60, "mail", 2, 0),
        ]
        assert await backend.telemetry.history(since=m + 1) == [HistoryPoint(m + 60, "mail", 2, 0)]

    async def test_history_drops_minutes_older_than_keep(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        now_minute = int(clock.now()) // 60 * 60
        old = now_minute - 3600
        await backend.telemetry.record_history([HistoryPoint(old, "q", 1, 0)], keep=1e12)
        await backend.telemetry.record_history([HistoryPoint(now_minute, "q", 1, 0)], keep=1800)
        assert await backend.telemetry.history(since=0) == [HistoryPoint(now_minute, "q", 1, 0)]

    async def test_concurrent_history_writers_lose_nothing(
        self, backend: Backend, other: Backend
    ) -> None:
        m = 1_800_000_000 // 60 * 60
        point = [HistoryPoint(m, "q", 1, 1)]
        await asyncio.gather(
            *(h.telemetry.record_history(point, keep=1e12) for h in [backend, other] * 10)
        )
        assert await backend.telemetry.history(since=0) == [HistoryPoint(m, "q", 20, 20)]
