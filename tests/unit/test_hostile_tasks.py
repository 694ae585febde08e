"""Hostile tasks cannot jam a worker: anything a task raises settles its job and frees its
slot; a blocked event loop is seen by the watchdog; an outage's back-off never spins."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from conveyor import Conveyor, State, Worker
from conveyor.worker.backoff import Backoff
from conveyor.worker.state import EXIT_LOOP_BLOCKED
from conveyor.worker.watchdog import Blocker, LoopWatchdog


class Custom(BaseException):
    """A BaseException that is neither Exception, SystemExit, KeyboardInterrupt nor
    CancelledError."""


def group() -> BaseExceptionGroup[BaseException]:
    return BaseExceptionGroup("two things went wrong", [Custom("inner"), ValueError("v")])


RAISERS = {
    "custom": lambda: Custom("from the task"),
    "group": group,
    "generator-exit": lambda: GeneratorExit("closing"),
}


async def run_burst(app: Conveyor, concurrency: int = 1) -> Worker:
    worker = Worker(app, burst=True, concurrency=concurrency, reaper=False)
    # A jammed slot would keep a burst worker running for ever: bound it.
    assert await asyncio.wait_for(worker.run(), 10) == 0
    return worker


@pytest.mark.parametrize("kind", sorted(RAISERS))
@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
async def test_a_task_raising_any_base_exception_settles_its_job(
    app: Conveyor, kind: str, sync: bool
) -> None:
    # Given a task that raises a BaseException that is not an Exception, and a healthy job
    make = RAISERS[kind]
    if sync:

        @app.task(name="hostile", retries=0)
        def hostile_sync() -> None:
            raise make()

        handle = hostile_sync.enqueue()
    else:

        @app.task(name="hostile", retries=0)
        async def hostile_async() -> None:
            raise make()

        handle = hostile_async.enqueue()
    ran: list[int] = []

    @app.task(name="ok")
    async def ok(n: int) -> None:
        ran.append(n)

    ok.enqueue(1)

    # When a one-slot burst worker runs both
    worker = await run_burst(app)

    # Then the hostile job is dead with the exception's type and message, the slot was
    # freed for the next job, and the worker ended on its own.
    record = handle.info()
    assert record.state is State.DEAD, record
    expected = type(make()).__name__
    assert record.last_error is not None and record.last_error.startswith(expected)
    assert record.traceback is not None and expected in record.traceback
    assert ran == [1]
    assert worker.counts.dead == 1 and worker.counts.succeeded == 1
    assert worker.stats().running == 0


async def test_a_base_exception_is_retried_per_policy(app: Conveyor) -> None:
    @app.task(name="flaky", retries=2, backoff=60)
    async def flaky() -> None:
        raise Custom("once")

    handle = flaky.enqueue()
    await run_burst(app)
    record = handle.info()
    assert record.state is State.SCHEDULED, record  # a retry waits for its backoff
    assert record.last_error == "Custom: once"


async def test_middleware_raising_a_base_exception_settles_the_job(app: Conveyor) -> None:
    @app.middleware
    async def broken(ctx: object, call_next: object) -> None:
        raise Custom("from middleware")

    @app.task(name="plain", retries=0)
    async def plain() -> None: ...

    handle = plain.enqueue()
    await run_burst(app)
    assert handle.info().state is State.DEAD


# -- the loop watchdog ---------------------------------------------------------------------


async def test_the_watchdog_names_the_blocking_job_and_ends_the_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a watchdog on this loop that would exit 0.3 s past a 0.2 s timeout
    exits: list[int] = []
    loop = asyncio.get_running_loop()

    def blocker(task: asyncio.Task[object] | None) -> Blocker:
        name = task.get_name() if task is not None else "?"
        return Blocker(f"job x ({name})", 0.2, "x")

    dog = LoopWatchdog(
        loop,
        blocker=blocker,
        warn_after=0.2,
        grace=0.3,
        shutdown_grace=30,
        exit=exits.append,
    )
    dog.start()
    try:
        # When a coroutine blocks the loop with time.sleep for 1.5 s
        async def blocking() -> None:
            time.sleep(1.5)

        with caplog.at_level(logging.WARNING, logger="conveyor.worker"):
            await asyncio.create_task(blocking(), name="job-x")
            await asyncio.sleep(0.6)  # the watchdog logs the end of the stall
    finally:
        dog.stop()
        dog.join(2)

    # Then it logged the job and the loop's stack, and asked for exit code 4 once
    text = caplog.text
    assert "blocked for" in text and "job x (job-x)" in text
    assert "time.sleep(1.5)" in text  # the stack shows the blocking line
    assert exits == [EXIT_LOOP_BLOCKED]
    assert dog.stalls == 1 and dog.longest >= 0.5


async def test_the_watchdog_honours_a_stop_signal_the_loop_cannot_handle() -> None:
    exits: list[int] = []
    signals: list[float] = []  # what the worker's SignalTrap records
    dog = LoopWatchdog(
        asyncio.get_running_loop(),
        blocker=lambda task: Blocker("job y", 600.0, "y"),
        warn_after=0.1,
        grace=600,
        shutdown_grace=0.3,
        signals=signals,
        exit=exits.append,
    )
    dog.start()
    try:
        signals.append(time.monotonic())  # as the SIGTERM handler does, while the loop is stuck
        time.sleep(1.2)
    finally:
        dog.stop()
        dog.join(2)
    # The job's own 600 s timeout is far off, but the shutdown grace is over.
    assert exits == [EXIT_LOOP_BLOCKED]


async def test_a_blocking_async_task_is_reported_by_the_worker(
    app: Conveyor, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a worker with a 0.2 s stall threshold and an async task that blocks for 0.8 s
    app.settings.worker_loop_warn = 0.2

    @app.task(name="blocker", timeout=5)
    async def blocker() -> None:
        time.sleep(0.8)

    handle = blocker.enqueue()
    with caplog.at_level(logging.WARNING, logger="conveyor.worker"):
        worker = await run_burst(app)

    # Then the log names the job, and the worker counted the stall
    assert f"job {handle.id} (blocker)" in caplog.text
    assert "use a plain `def` task" in caplog.text
    assert worker.stats().loop_stalls == 1


# -- outage back-off -----------------------------------------------------------------------


def test_backoff_logs_one_line_per_step_then_reminders(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.backoff")
    backoff = Backoff("claiming jobs", log, first=0.1, cap=0.8, remind=3600)
    with caplog.at_level(logging.WARNING, logger="test.backoff"):
        delays = [backoff.failed(OSError("connection refused")) for _ in range(1000)]
        backoff.succeeded()
    assert delays[:5] == [0.1, 0.2, 0.4, 0.8, 0.8]
    # 4 steps, one "keeps failing" line at the cap, then one summary: not 1000 lines.
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 6, lines
    assert "works again after 1000 failed attempts" in lines[-1]
