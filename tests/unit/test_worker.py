"""The worker on the memory backend: timeouts, priority, routing, leases, stopping."""

from __future__ import annotations

import asyncio
import threading

from conveyor import Conveyor, Priority, State, Worker
from conveyor.clock import FakeClock
from conveyor.job import JobQuery, Lease
from conveyor.testing import make_test_app
from conveyor.worker.state import EXIT_STUCK_THREAD

from .conftest import until


def worker_for(app: Conveyor, **options: object) -> Worker:
    options.setdefault("reaper", False)
    return Worker(app, **options)  # type: ignore[arg-type]


# -- timeouts ------------------------------------------------------------------------------


async def test_an_async_task_over_its_timeout_is_cancelled(app: Conveyor) -> None:
    cancelled = asyncio.Event()

    @app.task(retries=0, timeout=0.05)
    async def slow() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    handle = slow.enqueue()
    worker = worker_for(app, burst=True)
    await worker.run()
    assert cancelled.is_set()
    record = handle.info()
    assert record.state is State.DEAD
    assert record.last_error is not None
    assert "longer than its 0.05s timeout and was cancelled" in record.last_error
    assert worker.stuck_threads == 0 and worker.stop_reason is not None
    assert "burst" in worker.stop_reason


async def test_a_sync_task_over_its_timeout_fails_and_the_worker_stops_itself(
    app: Conveyor,
) -> None:
    release = threading.Event()

    @app.task(retries=1, backoff=60, timeout=0.05)
    def stuck() -> None:
        release.wait(10)

    @app.task
    async def other() -> None: ...

    handle = stuck.options(priority="high").enqueue()
    other.enqueue()
    worker = worker_for(app, concurrency=1)  # not burst: it stops on its own
    try:
        # with its own exit code, so `Restart=on-failure` supervisors restart it too
        assert await asyncio.wait_for(worker.run(), 5) == EXIT_STUCK_THREAD
    finally:
        release.set()
    record = handle.info()
    assert record.state is State.SCHEDULED  # failed, and will be retried
    assert record.last_error is not None and record.last_error.startswith("timeout:")
    assert worker.stuck_threads == 1
    assert worker.stop_reason is not None and "stuck thread" in worker.stop_reason


# -- priority and routing ------------------------------------------------------------------


async def test_strict_priority_order_with_one_slot(app: Conveyor) -> None:
    order: list[str] = []

    @app.task
    async def record(label: str) -> None:
        order.append(label)

    for label, prio in [
        ("low1", "low"),
        ("norm1", "normal"),
        ("high1", "high"),
        ("low2", "low"),
        ("high2", "high"),
        ("norm2", "normal"),
    ]:
        record.options(priority=prio).enqueue(label)
    await worker_for(app, burst=True, concurrency=1).run()
    assert order == ["high1", "high2", "norm1", "norm2", "low1", "low2"]


async def test_routing_never_runs_jobs_it_does_not_match(app: Conveyor) -> None:
    ran: list[str] = []

    @app.task(name="t.a")
    async def a(label: str) -> None:
        ran.append(label)

    @app.task(name="t.b")
    async def b(label: str) -> None:
        ran.append(label)

    a.options(queue="account-1").enqueue("a-account-1")
    a.options(queue="account-2", priority="low").enqueue("a-account-2-low")
    a.options(queue="mail").enqueue("a-mail")
    b.options(queue="account-3").enqueue("b-account-3")

    await worker_for(app, burst=True, queues=("account-*",), job_types=("t.a",)).run()
    assert sorted(ran) == ["a-account-1", "a-account-2-low"]

    ran.clear()
    await worker_for(app, burst=True, priorities=(Priority.LOW,)).run()
    assert ran == []  # the only low job already ran

    await worker_for(app, burst=True, queues=("mail",), priorities=(Priority.NORMAL,)).run()
    assert ran == ["a-mail"]
    left = await app.backend.admin.query(JobQuery(states=(State.READY,)))
    assert [j.task for j in left] == ["t.b"]


# -- leases --------------------------------------------------------------------------------


async def test_a_worker_that_loses_its_lease_cancels_the_job_and_a_late_result_is_fenced(
    clock: FakeClock,
) -> None:
    app = make_test_app(clock=clock, lease_seconds=30)
    started = asyncio.Event()
    runs: list[str] = []

    @app.task
    async def long() -> str:
        runs.append("start")
        if len(runs) == 1:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                runs.append("cancelled")
                raise
        return "second run"

    handle = long.enqueue()
    worker = worker_for(app, burst=True, heartbeat_interval=0.01)
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 2)
    old = handle.info()
    assert old.state is State.RUNNING and old.lease_token is not None

    # When the lease expires (the worker looked dead) and the reaper recovers the job.
    # The heartbeat may extend the lease between the two steps, so repeat until it lands.
    async def expire_and_recover() -> bool:
        clock.advance(31)
        return (await app.backend.recover(max_recoveries=5)).recovered == 1

    while not await expire_and_recover():
        await asyncio.sleep(0)

    # Then the heartbeat finds the lease gone and the worker cancels the job, then runs it again
    await asyncio.wait_for(running, 2)
    assert runs == ["start", "cancelled", "start"]
    assert worker.counts.lost == 1
    assert handle.result() == "second run"
    assert handle.info().recoveries == 1

    # And a late result under the old lease is rejected and counted
    fenced = (await app.backend.admin.counters())["fenced"]
    assert await app.backend.complete(Lease(old.id, old.lease_token), b'"late"') is False
    assert (await app.backend.admin.counters())["fenced"] == fenced + 1
    assert handle.result() == "second run"


# -- stopping ------------------------------------------------------------------------------


async def test_graceful_stop_releases_unfinished_jobs_after_the_grace_period(
    app: Conveyor,
) -> None:
    finish_quick = asyncio.Event()
    started: list[str] = []

    @app.task
    async def quick() -> str:
        started.append("quick")
        await finish_quick.wait()
        return "done"

    @app.task
    async def forever() -> None:
        started.append("forever")
        await asyncio.Event().wait()

    q = quick.enqueue()
    f = forever.enqueue()
    worker = worker_for(app, concurrency=2, grace_period=0.2)
    running = asyncio.create_task(worker.run())
    await until(lambda: len(started) == 2)
    # When asked to stop while both run, and one of them finishes within the grace period
    worker.stop("test")
    finish_quick.set()
    await asyncio.wait_for(running, 3)
    # Then that one succeeded, and the other went straight back to ready, its attempt returned
    assert q.result() == "done"
    record = f.info()
    assert (record.state, record.attempts, record.lease_token) == (State.READY, 0, None)
    assert worker.counts.released == 1
    assert worker.stop_reason == "test"


async def test_force_stop_releases_at_once(app: Conveyor) -> None:
    started = asyncio.Event()

    @app.task
    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    handle = forever.enqueue()
    worker = worker_for(app, grace_period=60)
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 2)
    worker.stop()
    worker.force_stop()
    assert await asyncio.wait_for(running, 3) == 1
    assert handle.state() is State.READY


async def test_max_jobs_stops_after_n(app: Conveyor) -> None:
    @app.task
    async def tick(n: int) -> int:
        return n

    handles = tick.enqueue_many([(i,) for i in range(5)])
    worker = worker_for(app, concurrency=1, max_jobs=2)  # not burst: max_jobs ends it
    assert await asyncio.wait_for(worker.run(), 3) == 0
    assert worker.counts.processed == 2
    assert worker.stop_reason == "max jobs reached (2)"
    assert [h.state() for h in handles] == [State.SUCCEEDED] * 2 + [State.READY] * 3


async def test_stats_report_what_happened(app: Conveyor) -> None:
    @app.task(retries=0)
    async def flip(fail: bool) -> None:
        if fail:
            raise ValueError("flip")

    flip.enqueue(False)
    flip.enqueue(True)
    worker = worker_for(app, burst=True, pool="jobs")
    await worker.run()
    stats = worker.stats()
    assert (stats.processed, stats.succeeded, stats.failed, stats.dead) == (2, 1, 1, 1)
    assert stats.pool == "jobs" and stats.running == 0


async def test_worker_caps_bound_the_timeout_and_runs_stored_on_jobs() -> None:
    # Given jobs enqueued with a long timeout and many retries
    import asyncio

    from conveyor import Conveyor, State, Worker

    app = Conveyor("memory://")

    @app.task(timeout=60, retries=10, backoff=0)
    async def slow() -> None:
        await asyncio.sleep(5)

    handle = await slow.enqueue_async()
    # When a worker with WORKER_TIMEOUT=0.05 and WORKER_TRIES=2 runs them until none is left
    worker = Worker(app, timeout_cap=0.05, tries_cap=2, concurrency=1)
    runner = asyncio.create_task(worker.run())
    info = await handle.info_async()
    for _ in range(200):
        info = await handle.info_async()
        if info.state is State.DEAD:
            break
        await asyncio.sleep(0.02)
    worker.stop()
    assert await runner == 0
    # Then each run was cut at the cap, and the job is dead after two runs, not eleven
    assert info.state is State.DEAD
    assert info.attempts == 2
    assert info.last_error is not None and "timeout" in info.last_error
