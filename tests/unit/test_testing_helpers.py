"""`conveyor.testing`: eager mode, swapping in a memory store, and `drain`."""

from __future__ import annotations

import asyncio

import pytest

from conveyor import Conveyor, Fail, JobFailed, Retry, State, current_job
from conveyor.backends.memory import MemoryBackend
from conveyor.clock import SYSTEM_CLOCK, FakeClock
from conveyor.job import JobQuery
from conveyor.testing import (
    DrainReport,
    drain,
    drain_async,
    eager,
    make_test_app,
    use_memory_backend,
)

# -- eager mode ----------------------------------------------------------------------------


def test_eager_runs_the_job_at_once_through_the_executor(app: Conveyor) -> None:
    seen: list[tuple[str, int]] = []

    @app.task(queue="mail")
    async def send(to: str) -> str:
        job = current_job()
        seen.append((job.queue, job.attempt))
        return f"sent to {to}"

    with eager(app):
        handle = send.enqueue("a@example.com")
        assert seen == [("mail", 1)]
        assert handle.state() is State.SUCCEEDED
        assert handle.result() == "sent to a@example.com"
    assert app.eager is False
    later = send.enqueue("b@example.com")
    assert later.state() is State.READY and len(seen) == 1


def test_eager_re_raises_the_task_error_and_dead_letters_without_retries(app: Conveyor) -> None:
    calls: list[int] = []

    @app.task(retries=5)
    def charge(amount: int) -> None:
        calls.append(amount)
        raise ValueError(f"cannot charge {amount}")

    with eager(app), pytest.raises(ValueError, match="cannot charge 5"):
        charge.enqueue(5)
    assert calls == [5]
    [record] = asyncio.run(app.backend.admin.query(JobQuery()))
    assert (record.state, record.attempts) == (State.DEAD, 1)
    assert record.last_error == "ValueError: cannot charge 5 (eager mode: no retries)"


def test_eager_without_raising_returns_the_dead_job(app: Conveyor) -> None:
    @app.task
    def charge() -> None:
        raise Retry(delay=10)

    with eager(app, raise_errors=False):
        handle = charge.enqueue()
    assert handle.state() is State.DEAD
    with pytest.raises(JobFailed):
        handle.result()


@pytest.mark.parametrize("error", [Fail("card declined"), KeyboardInterrupt()])
def test_eager_reports_failures_without_a_plain_task_error_as_job_failed(
    app: Conveyor, error: BaseException
) -> None:
    @app.task
    async def charge() -> None:
        raise error

    with eager(app), pytest.raises(JobFailed, match="ended dead in eager mode") as info:
        charge.enqueue()
    assert info.value.__cause__ is error
    assert info.value.record.state is State.DEAD  # type: ignore[attr-defined]


def test_app_eager_attribute_alone_works_and_raises(app: Conveyor) -> None:
    @app.task
    def boom() -> None:
        raise RuntimeError("boom")

    app.eager = True
    with pytest.raises(RuntimeError, match="boom"):
        boom.enqueue()


def test_app_eager_attribute_works_inside_use_memory_backend() -> None:
    # Given an app of your own, which never went through make_test_app
    app = Conveyor("memory://")

    @app.task
    def double(n: int) -> int:
        return 2 * n

    # When eager mode is switched on by the attribute inside use_memory_backend
    with use_memory_backend(app):
        app.eager = True
        job = double.enqueue(4)
        # Then the job ran at once, through the runner the block installed
        assert job.state() is State.SUCCEEDED and job.result() == 8
    assert app.eager_runner is None  # put back with the storage


def test_app_eager_attribute_works_on_a_plain_app() -> None:
    # The app never imports conveyor.testing (imports point one way): the package root
    # wires the inline runner in, loaded on first use, so `app.eager = True` still works.
    app = Conveyor("memory://")

    @app.task
    def double(n: int) -> int:
        return 2 * n

    app.eager = True
    assert double.enqueue(4).result() == 8


def test_eager_ignores_delays_and_runs_every_job_of_a_batch(
    app: Conveyor, clock: FakeClock
) -> None:
    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    with eager(app):
        delayed = add.options(delay=3600).enqueue(1, 2)
        batch = app.enqueue_many([add.call(3, 4), add.options(run_at=clock.now() + 60).call(5, 6)])
    assert delayed.result() == 3
    assert [h.result() for h in batch] == [7, 11]


def test_eager_with_a_unique_key_that_is_held(app: Conveyor) -> None:
    @app.task(unique_key="only-one")
    def once() -> int:
        return 1

    held = once.enqueue()  # not eager: stays ready and holds the key
    with eager(app):
        again = once.enqueue()
    assert again.existing and again.id == held.id
    assert held.state() is State.READY  # an existing job is not run by eager mode


def test_eager_runs_the_new_job_not_an_older_one_with_the_same_task(app: Conveyor) -> None:
    ran: list[int] = []

    @app.task
    def work(n: int) -> None:
        ran.append(n)

    older = work.enqueue(1)
    with eager(app):
        work.enqueue(2)
    assert ran == [2]
    record = older.info()
    assert (record.state, record.attempts) == (State.READY, 0)


async def test_eager_from_async_code_runs_on_the_callers_loop(app: Conveyor) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    @app.task
    async def where() -> str:
        loops.append(asyncio.get_running_loop())
        return "here"

    with eager(app):
        handle = await where.enqueue_async()
        assert loops == [asyncio.get_running_loop()]
        # a sync enqueue inside async code still works (on a helper thread's loop)
        sync_handle = where.enqueue()
    assert await handle.result_async() == "here"
    assert sync_handle.result() == "here"
    assert loops[1] is not loops[0]


async def test_eager_async_raises_too(app: Conveyor) -> None:
    @app.task
    async def boom() -> None:
        raise LookupError("missing")

    with eager(app), pytest.raises(LookupError, match="missing"):
        await boom.enqueue_async()


def test_eager_nests_and_restores(app: Conveyor) -> None:
    @app.task
    def boom() -> None:
        raise RuntimeError("boom")

    with eager(app, raise_errors=False):
        with eager(app), pytest.raises(RuntimeError):
            boom.enqueue()
        assert boom.enqueue().state() is State.DEAD
    assert app.eager is False


def test_make_test_app_eager(clock: FakeClock) -> None:
    app = make_test_app(eager=True, clock=clock, max_retries=0)

    @app.task
    def one() -> int:
        return 1

    assert app.url == "memory://" and app.settings.max_retries == 0
    assert one.enqueue().result() == 1


# -- use_memory_backend --------------------------------------------------------------------


def test_use_memory_backend_swaps_and_restores(tmp_path: object) -> None:
    app = Conveyor("sqlite:///never-created.db")

    @app.task
    def work() -> int:
        return 5

    fake = FakeClock()
    with use_memory_backend(app, clock=fake) as backend:
        assert isinstance(backend, MemoryBackend) and app.backend is backend
        assert app.clock is fake and backend.clock is fake
        handle = work.enqueue()
        assert drain(app).succeeded[0].id == handle.id
        assert handle.result() == 5
    assert app.url == "sqlite:///never-created.db"
    assert app.clock is SYSTEM_CLOCK
    assert app._backend is None  # the real backend was never created


def test_each_use_of_memory_backend_starts_empty(app: Conveyor) -> None:
    @app.task
    def work() -> None: ...

    with use_memory_backend(app):
        work.enqueue()
    with use_memory_backend(app):
        assert asyncio.run(app.backend.admin.query(JobQuery())) == []


# -- drain ---------------------------------------------------------------------------------


def test_drain_runs_everything_including_retries_on_a_fake_clock(
    app: Conveyor, clock: FakeClock
) -> None:
    attempts: list[int] = []

    @app.task(retries=3, backoff=3600)
    def flaky() -> str:
        attempts.append(current_job().attempt)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return "ok"

    @app.task(retries=1, backoff=60)
    def hopeless() -> None:
        raise ValueError("never")

    @app.task
    async def later() -> None: ...

    start = clock.now()
    ok = flaky.enqueue()
    bad = hopeless.enqueue()
    late = later.options(delay=86_400).enqueue()
    report = drain(app)
    assert attempts == [1, 2, 3]
    assert ok.result() == "ok" and late.state() is State.SUCCEEDED
    assert [j.id for j in report.dead] == [bad.id]
    assert {j.id for j in report.succeeded} == {ok.id, late.id}
    assert (report.processed, report.retried) == (6, 3)
    assert clock.now() >= start + 86_400  # time jumped instead of passing
    assert not report.ok
    with pytest.raises(JobFailed, match=r"(?s)1 job\(s\) were dead-lettered.*ValueError: never"):
        report.raise_on_failure()
    assert repr(report) == "<DrainReport processed=6 succeeded=2 dead=1 retried=3>"


def test_drain_without_scheduled_jobs_leaves_them(app: Conveyor, clock: FakeClock) -> None:
    @app.task(retries=2, backoff=10)
    def flaky() -> None:
        raise ConnectionError("later")

    @app.task
    def later() -> None: ...

    handle = flaky.enqueue()
    delayed = later.options(delay=5).enqueue()
    report = drain(app, include_scheduled=False)
    assert (report.processed, report.retried, report.succeeded, report.dead) == (1, 1, [], [])
    assert handle.state() is State.SCHEDULED and delayed.state() is State.SCHEDULED
    report.raise_on_failure()  # nothing dead


def test_drain_on_a_real_clock_waits_for_jobs_due_soon_only() -> None:
    app = make_test_app()  # system clock

    @app.task
    def soon() -> None: ...

    near = soon.options(delay=0.05).enqueue()
    far = soon.options(delay=3600).enqueue()
    report = drain(app, timeout=2)
    assert [j.id for j in report.succeeded] == [near.id]
    assert far.state() is State.SCHEDULED


def test_drain_by_queue_and_max_jobs(app: Conveyor) -> None:
    @app.task
    def work(n: int) -> None: ...

    mail = [work.options(queue="mail").enqueue(i) for i in range(3)]
    other = work.options(queue="jobs").enqueue(9)
    report = drain(app, queues=["mail"], max_jobs=2)
    assert report.processed == 2 and len(report.succeeded) == 2
    assert [h.state() for h in mail].count(State.SUCCEEDED) == 2
    assert other.state() is State.READY
    assert drain(app, queues=["ma*"]).processed == 1


def test_drain_ignores_worker_routing_settings(clock: FakeClock) -> None:
    app = make_test_app(clock=clock, worker_queues="elsewhere", worker_max_jobs=1)

    @app.task
    def work() -> None: ...

    work.enqueue()
    work.enqueue()
    assert drain(app).processed == 2


def test_drain_times_out_on_a_job_that_never_ends(app: Conveyor) -> None:
    @app.task
    async def forever() -> None:
        await asyncio.Event().wait()

    handle = forever.enqueue()
    with pytest.raises(TimeoutError, match=r"drain did not finish within 0\.1s"):
        drain(app, timeout=0.1)
    assert handle.state() is State.READY  # released, not left running


async def test_drain_async_and_jobs_that_enqueue_jobs(app: Conveyor) -> None:
    @app.task
    async def leaf(n: int) -> int:
        return n

    @app.task
    async def fan_out(n: int) -> None:
        for i in range(n):
            await leaf.enqueue_async(i)

    await fan_out.enqueue_async(3)
    report = await drain_async(app)
    assert report.processed == 4
    assert sorted(j.task for j in report.succeeded) == [fan_out.name] + [leaf.name] * 3
    assert isinstance(report, DrainReport) and report.ok


async def test_sync_drain_inside_an_async_test(app: Conveyor) -> None:
    @app.task
    async def work() -> int:
        return 1

    handle = work.enqueue()
    assert drain(app).processed == 1
    assert await handle.result_async() == 1


def test_drain_reports_in_finish_order_then_enqueue_order(app: Conveyor, clock: FakeClock) -> None:
    @app.task
    def step(n: int) -> None: ...

    handles = [step.options(delay=d).enqueue(i) for i, d in enumerate([30, 0, 10, 0])]
    report = drain(app, concurrency=1)
    assert [j.id for j in report.succeeded] == [handles[i].id for i in (1, 3, 2, 0)]
