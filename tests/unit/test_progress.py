"""Progress from inside a job: written at most once an interval, the last one before the end.

`JobReports` against the memory store (the reference `Progress`), then a real `Worker` and
eager mode end to end, read back through the job handle.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable

import pytest

from conveyor import Conveyor, State, Worker, current_job
from conveyor.attempts import JobProgress
from conveyor.backends.memory import MemoryBackend
from conveyor.errors import Retry
from conveyor.job import JobRecord, Lease, NewJob, Priority, Routing
from conveyor.testing import make_test_app
from conveyor.worker import progress as progress_module
from conveyor.worker.progress import JobReports, ProgressWriter

from .conftest import until
from .partial_stores import partial_store


async def claimed(backend: MemoryBackend) -> Lease:
    """A job stored and claimed on ``backend``: its lease."""
    job = NewJob("t", "default", Priority.NORMAL, b"[[],{}]", max_retries=3, timeout=30)
    await backend.enqueue([job])
    [record] = await backend.claim("w1", Routing(), 1, 60)
    assert record.lease_token is not None
    return Lease(record.id, record.lease_token)


async def stored(backend: MemoryBackend, job_id: str) -> JobRecord:
    record = await backend.get(job_id)
    assert record is not None
    return record


async def kept(backend: MemoryBackend, job_id: str) -> float | None:
    """The ``done`` of the report the store keeps for the job (``None``: none)."""
    progress = (await stored(backend, job_id)).progress
    return None if progress is None else progress.done


async def reports_on(backend: MemoryBackend, interval: float) -> tuple[JobReports, Lease]:
    lease = await claimed(backend)
    reports = ProgressWriter(backend.progress, interval=interval).for_job(lease)
    assert reports is not None
    return reports, lease


# -- throttling and the final flush --------------------------------------------------------


async def test_the_first_report_is_written_at_once_the_rest_wait_for_the_interval() -> None:
    backend = MemoryBackend("memory://")
    reports, lease = await reports_on(backend, interval=3600)
    # Given a first report
    reports.report(1, 10, "one")
    # Then it reaches the store without waiting
    await until(lambda: not reports.unsent)
    assert await kept(backend, lease.job_id) == 1
    # When more come within the interval
    reports.report(2, 10, "two")
    reports.report(3, 10, "three")
    await asyncio.sleep(0.05)
    # Then the store still has the first (at most one write an interval)
    assert await kept(backend, lease.job_id) == 1
    assert reports.unsent
    # When the job is about to be settled, the last one is written
    await reports.flush()
    progress = (await stored(backend, lease.job_id)).progress
    assert progress is not None
    assert (progress.done, progress.total, progress.note, progress.attempt) == (
        3.0,
        10.0,
        "three",
        1,
    )
    # and nothing reported afterwards is kept
    reports.report(9, 10, "late")
    await asyncio.sleep(0.02)
    assert await kept(backend, lease.job_id) == 3
    reports.close()


async def test_the_pending_report_is_written_when_the_interval_is_up() -> None:
    backend = MemoryBackend("memory://")
    reports, lease = await reports_on(backend, interval=0.05)
    reports.report(1, None, None)
    await until(lambda: not reports.unsent)
    reports.report(2, None, None)
    reports.report(3, None, "latest")
    # Without a flush, the latest report is written once the interval has passed
    await until(lambda: not reports.unsent)
    assert await kept(backend, lease.job_id) == 3
    reports.close()


async def test_a_report_from_a_plain_def_thread_reaches_the_store() -> None:
    backend = MemoryBackend("memory://")
    reports, lease = await reports_on(backend, interval=3600)
    thread = threading.Thread(target=reports.report, args=(5, 8, "from a thread"))
    thread.start()
    await asyncio.to_thread(thread.join, 5)
    await until(lambda: not reports.unsent)
    assert await kept(backend, lease.job_id) == 5


async def test_close_drops_the_pending_report_and_takes_no_more() -> None:
    backend = MemoryBackend("memory://")
    reports, lease = await reports_on(backend, interval=3600)
    reports.report(1, None, None)
    await until(lambda: not reports.unsent)
    reports.report(2, None, None)
    reports.close()
    assert not reports.unsent
    reports.report(3, None, None)
    await reports.flush()
    assert await kept(backend, lease.job_id) == 1


async def test_a_store_error_is_logged_once_with_the_job_id_and_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a store whose progress writes fail
    backend = MemoryBackend("memory://")
    part = backend.progress
    part.report_progress = failing(ConnectionError("store down"))  # type: ignore[method-assign]
    reports, lease = await reports_on(backend, interval=0.01)
    # When the job reports several times, and then ends
    with caplog.at_level(logging.WARNING, logger="conveyor.worker"):
        for n in range(1, 4):
            reports.report(n, None, None)
            await until(lambda: not reports.unsent)
        reports.report(4, None, None)
        await reports.flush()
    # Then one warning names the job and the error, and nothing was kept
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert lease.job_id in warnings[0] and "store down" in warnings[0]
    assert await kept(backend, lease.job_id) is None


async def test_a_hanging_write_holds_the_end_of_the_job_for_a_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(progress_module, "FLUSH_WAIT", 0.05)
    backend = MemoryBackend("memory://")
    never = asyncio.Event()

    async def hang(*_: object) -> bool:
        await never.wait()
        return True

    backend.progress.report_progress = hang  # type: ignore[method-assign]
    reports, _ = await reports_on(backend, interval=3600)
    reports.report(1, None, None)
    reports.report(2, None, None)
    await asyncio.wait_for(reports.flush(), 5)  # returns although the write never ends
    never.set()


def failing(exc: Exception) -> Callable[..., Awaitable[bool]]:
    async def report_progress(*_: object) -> bool:
        raise exc

    return report_progress


# -- a worker, end to end ------------------------------------------------------------------


def worker_for(app: Conveyor) -> Worker:
    return Worker(app, burst=True, reaper=False)


async def test_a_worker_keeps_the_final_report_of_async_and_sync_tasks() -> None:
    app = make_test_app()

    @app.task(name="steps.async")
    async def async_steps(n: int) -> None:
        for i in range(1, n + 1):
            current_job().progress(i, n, f"step {i}")
            await asyncio.sleep(0)

    @app.task(name="steps.sync")
    def sync_steps(n: int) -> None:
        for i in range(1, n + 1):
            current_job().progress(i, n, f"step {i}")

    @app.task(name="steps.none")
    async def silent() -> None: ...

    a, s, q = async_steps.enqueue(5), sync_steps.enqueue(7), silent.enqueue()
    await worker_for(app).run()

    assert await a.progress_async() == progress_of(await a.info_async(), 5, 5, "step 5")
    assert s.progress() == progress_of(s.info(), 7, 7, "step 7")
    assert q.progress() is None
    [attempt] = q.attempts()
    assert attempt.outcome == "succeeded"


def progress_of(record: JobRecord, done: float, total: float, note: str) -> JobProgress:
    assert record.progress is not None
    return JobProgress(done, total, note, record.attempts, record.progress.at)


async def test_a_retried_job_shows_only_the_current_attempts_progress_and_every_attempt() -> None:
    app = make_test_app()

    @app.task(name="flaky", retries=2, backoff=0)
    async def flaky() -> None:
        job = current_job()
        if job.attempt == 1:
            current_job().progress(3, 4, "first try")
            raise Retry("once more", delay=0)

    handle = flaky.enqueue()
    await worker_for(app).run()

    # Then the first attempt's report is not shown for the second, which reported nothing
    assert handle.state() is State.SUCCEEDED
    assert handle.progress() is None
    history = await handle.attempts_async()
    assert [(a.number, a.outcome) for a in history] == [(1, "failed"), (2, "succeeded")]
    assert history[0].worker_id == history[1].worker_id is not None


async def test_a_store_without_progress_checks_the_values_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_test_app()
    app._backend = partial_store("admin", "telemetry")

    @app.task(name="reports", retries=0)
    async def reports(done: object) -> None:
        current_job().progress(done)  # type: ignore[arg-type]

    ok, bad = reports.enqueue(1), reports.enqueue("half")
    with caplog.at_level(logging.INFO, logger="conveyor.worker"):
        await worker_for(app).run()
    lines = [r.getMessage() for r in caplog.records if "keep job progress" in r.getMessage()]
    assert lines == [
        "the partial:// store does not keep job progress: current_job().progress() reports "
        "are checked and dropped"
    ]
    assert ok.state() is State.SUCCEEDED and ok.progress() is None
    record = bad.info()
    assert record.state is State.DEAD
    assert record.last_error is not None and "progress: done must be a finite number" in (
        record.last_error
    )


def test_eager_mode_keeps_the_last_report_on_its_memory_store() -> None:
    app = make_test_app(eager=True)

    @app.task(name="eager.steps")
    def steps(n: int) -> None:
        for i in range(1, n + 1):
            current_job().progress(i, n)

    handle = steps.enqueue(4)
    progress = handle.progress()
    assert progress is not None and (progress.done, progress.total) == (4.0, 4.0)
    assert [a.outcome for a in handle.attempts()] == ["succeeded"]
