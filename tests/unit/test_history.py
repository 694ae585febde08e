"""Throughput history: a worker's finished attempts, per minute and queue, in the backend."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from conveyor import Conveyor, Worker
from conveyor.clock import FakeClock
from conveyor.job import HistoryPoint, JobRecord
from conveyor.testing import make_test_app
from conveyor.worker.history import HistoryRecorder, attach_history

from .conftest import until

START = 1_700_000_040.0  # 20 s into a minute


def minute_of(t: float) -> int:
    return int(t // 60) * 60


async def test_a_workers_jobs_are_counted_per_minute_and_queue(clock: FakeClock) -> None:
    # Given a worker with history attached, two queues, one task that fails for good
    clock.set(START)
    app = make_test_app(clock=clock, max_retries=0)

    @app.task
    async def ok() -> None:
        return None

    @app.task(queue="mail")
    async def boom() -> None:
        raise RuntimeError("no")

    for _ in range(3):
        ok.enqueue()
    boom.enqueue()
    worker = Worker(app, burst=True, reaper=False)
    recorder = attach_history(worker)
    assert recorder is not None

    # When it drains them and the recorder flushes
    assert await worker.run() == 0
    assert await recorder.flush()

    # Then the backend holds 3 successes in `default` and 1 failure in `mail`, this minute.
    m = minute_of(START)
    assert await app.backend.telemetry.history(0) == [
        HistoryPoint(m, "default", succeeded=3),
        HistoryPoint(m, "mail", failed=1),
    ]
    assert recorder.pending == {}


async def test_counts_are_summed_across_minutes_and_flushes(
    app: Conveyor, clock: FakeClock
) -> None:
    clock.set(START)
    recorder = HistoryRecorder(app.backend.clone(), clock, keep_seconds=3600)
    job = _job(app)
    recorder.observe(job, "succeeded", 0.1)
    recorder.observe(job, "retried", 0.1)
    recorder.observe(job, "released", 0.1)  # not a finished attempt
    recorder.observe(job, "lost", 0.1)
    assert await recorder.flush()
    clock.advance(60)
    recorder.observe(job, "dead", 0.1)
    recorder.observe(job, "succeeded", 0.1)
    assert await recorder.flush()
    clock.advance(-60)  # a second worker still in the first minute adds to it
    recorder.observe(job, "succeeded", 0.1)
    assert await recorder.flush()

    m = minute_of(START)
    assert await app.backend.telemetry.history(0) == [
        HistoryPoint(m, "default", succeeded=2, failed=1),
        HistoryPoint(m + 60, "default", succeeded=1, failed=1),
    ]
    assert await app.backend.telemetry.history(m + 60) == [HistoryPoint(m + 60, "default", 1, 1)]


async def test_a_failed_flush_keeps_the_counts_and_logs_once(
    app: Conveyor, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a backend whose history writes fail
    clock.set(START)
    backend = app.backend.clone()
    real = backend.telemetry.record_history
    down = True

    async def flaky(points: Sequence[HistoryPoint], keep: float) -> None:
        if down:
            raise ConnectionError("backend down")
        await real(points, keep)

    backend.telemetry.record_history = flaky  # type: ignore[method-assign]
    recorder = HistoryRecorder(backend, clock, keep_seconds=3600)
    job = _job(app)

    # When two flushes fail while jobs keep finishing
    with caplog.at_level(logging.INFO, logger="conveyor.history"):
        recorder.observe(job, "succeeded", 0.1)
        assert not await recorder.flush()
        recorder.observe(job, "succeeded", 0.1)
        assert not await recorder.flush()
        # Then one warning was logged and the counts were kept
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "backend down" in warnings[0].getMessage()
        assert recorder.points() == [HistoryPoint(minute_of(START), "default", 2)]

        # When the backend is back, the next flush sends everything once
        down = False
        assert await recorder.flush()
    assert await app.backend.telemetry.history(0) == [HistoryPoint(minute_of(START), "default", 2)]
    assert any("recorded again" in r.getMessage() for r in caplog.records)
    assert recorder.failures == 0


async def test_counts_older_than_the_window_are_dropped_after_a_failure(
    app: Conveyor, clock: FakeClock
) -> None:
    clock.set(START)
    backend = app.backend.clone()

    async def broken(points: Sequence[HistoryPoint], keep: float) -> None:
        raise ConnectionError("down")

    backend.telemetry.record_history = broken  # type: ignore[method-assign]
    recorder = HistoryRecorder(backend, clock, keep_seconds=120)
    recorder.observe(_job(app), "succeeded", 0.1)
    clock.advance(600)  # a long outage: that minute left the window
    assert not await recorder.flush()
    assert recorder.pending == {}


async def test_run_flushes_periodically_and_once_more_when_cancelled(
    app: Conveyor, clock: FakeClock
) -> None:
    clock.set(START)
    recorder = HistoryRecorder(app.backend.clone(), clock, keep_seconds=3600, interval=0.01)
    task = asyncio.create_task(recorder.run())
    recorder.observe(_job(app), "succeeded", 0.1)
    await until(lambda: recorder.pending == {})  # a periodic flush sent it

    recorder.observe(_job(app), "dead", 0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await app.backend.telemetry.history(0) == [
        HistoryPoint(minute_of(START), "default", succeeded=1, failed=1)
    ]


def test_history_hours_zero_turns_it_off(clock: FakeClock) -> None:
    app = make_test_app(clock=clock, history_hours=0)
    worker = Worker(app)
    assert attach_history(worker) is None
    assert worker.job_observers == []
    on = Worker(make_test_app(clock=clock, history_hours=2))
    recorder = attach_history(on)
    assert recorder is not None and recorder.keep_seconds == 7200
    assert on.job_observers == [recorder.observe]


def _job(app: Conveyor) -> JobRecord:
    """One stored job of the ``default`` queue."""
    task = app.tasks.get("noop")
    if task is None:

        @app.task(name="noop")
        async def noop() -> None:
            return None

        task = noop
    return task.enqueue().info()
