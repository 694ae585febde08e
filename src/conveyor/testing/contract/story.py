"""A job's story: the attempt log every store keeps, and progress reports (`Progress`)."""

from __future__ import annotations

import pytest

from conveyor.attempts import KEEP, LOST_ERROR, MAX_ERROR, MAX_TRACEBACK
from conveyor.backends.base import Backend
from conveyor.backends.capabilities import Progress
from conveyor.clock import FakeClock
from conveyor.job import Failure, Lease, State
from conveyor.testing.contract.fixtures import requires
from conveyor.testing.contract.jobs import LEASE, add, new_job, stored, take, take_one
from conveyor.tracebacks import MARKER


@pytest.mark.asyncio
class TestAttemptLog:
    """Core: every store that reads jobs keeps the attempts that did not succeed."""

    async def test_each_failed_attempt_is_kept_then_the_success(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        # Given a job that fails twice on two workers, then succeeds on a third
        [job_id] = await add(backend, new_job(max_retries=5))
        starts = []
        for n, worker in enumerate(("w1", "w2"), start=1):
            [job] = await take(backend, worker=worker)
            starts.append(job.started_at)
            clock.advance(3)
            failure = Failure(f"ValueError: bad {n}", f"Traceback {n}", retry_in=0.0)
            assert await backend.fail(Lease(job_id, job.lease_token or ""), failure)
        [job] = await take(backend, worker="w3")
        clock.advance(2)
        assert await backend.complete(Lease(job_id, job.lease_token or ""), None)

        # Then the story has both failures, in order, and the success from the job's fields
        record = await stored(backend, job_id)
        story = record.attempt_history()
        assert [(a.number, a.outcome, a.worker_id) for a in story] == [
            (1, "failed", "w1"),
            (2, "failed", "w2"),
            (3, "succeeded", "w3"),
        ]
        assert [a.error for a in story] == ["ValueError: bad 1", "ValueError: bad 2", None]
        assert [a.traceback for a in story[:2]] == ["Traceback 1", "Traceback 2"]
        assert [a.started_at for a in story[:2]] == starts
        assert [a.duration for a in story] == [3.0, 3.0, 2.0]
        assert story[2].ended_at == record.finished_at == clock.now()

    async def test_a_dead_attempt_ends_the_log(self, backend: Backend, clock: FakeClock) -> None:
        [job_id] = await add(backend, new_job(max_retries=0))
        _, lease = await take_one(backend)
        clock.advance(1)
        assert await backend.fail(lease, Failure("Fail: no", "tb"))

        record = await stored(backend, job_id)
        assert record.state is State.DEAD
        [attempt] = record.attempt_history()
        assert (attempt.number, attempt.outcome, attempt.error) == (1, "dead", "Fail: no")
        assert attempt.ended_at == record.failed_at == clock.now()

    async def test_a_running_attempt_is_shown_as_running(self, backend: Backend) -> None:
        [job_id] = await add(backend, new_job())
        await take(backend, worker="w9")

        [attempt] = (await stored(backend, job_id)).attempt_history()
        assert (attempt.number, attempt.outcome, attempt.worker_id) == (1, "running", "w9")
        assert attempt.ended_at is None

    async def test_an_expired_lease_is_a_lost_attempt(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        # Given a worker that vanished while running the job
        [job_id] = await add(backend, new_job())
        await take(backend, worker="gone")
        clock.advance(LEASE + 1)
        await backend.recover(max_recoveries=3)

        # Then its run is a lost attempt, and the next one has the same number
        [job] = await take(backend, worker="w2")
        story = (await stored(backend, job_id)).attempt_history()
        assert [(a.number, a.outcome, a.worker_id) for a in story] == [
            (1, "lost", "gone"),
            (1, "running", "w2"),
        ]
        assert story[0].error == LOST_ERROR
        assert job.attempts == 1

    async def test_the_log_is_bounded_in_number_and_size(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        # Given a job that failed more times than the log keeps, with huge texts
        [job_id] = await add(backend, new_job(max_retries=KEEP + 5))
        tail = "ValueError: the end"
        for n in range(KEEP + 3):
            _, lease = await take_one(backend)
            tb = "x" * (MAX_TRACEBACK * 2) + tail + MARKER + "internals"
            assert await backend.fail(lease, Failure(f"{n}:" + "e" * MAX_ERROR * 2, tb, 0.0))
            clock.advance(1)

        record = await stored(backend, job_id)
        log = record.attempt_history()
        # Then the newest KEEP are kept, each cut to the bounds, the traceback's end kept
        assert [a.number for a in log] == list(range(4, KEEP + 4))
        assert all(len(a.error or "") <= MAX_ERROR for a in log)
        assert all(len(a.traceback or "") <= MAX_TRACEBACK for a in log)
        assert log[-1].traceback is not None and log[-1].traceback.endswith(tail)
        assert log[-1].error is not None and log[-1].error.startswith(f"{KEEP + 2}:")
        # and the job's own last error is kept whole, as before
        assert record.last_error is not None and len(record.last_error) > MAX_ERROR

    async def test_a_stale_fail_adds_nothing(self, backend: Backend) -> None:
        [job_id] = await add(backend, new_job())
        await take_one(backend)
        assert not await backend.fail(Lease(job_id, "f" * 32), Failure("late", None, 0.0))
        [attempt] = (await stored(backend, job_id)).attempt_history()
        assert attempt.outcome == "running"


@requires(Progress)
@pytest.mark.asyncio
class TestProgress:
    """Stores with `Progress` keep a running job's latest report."""

    async def test_the_latest_report_is_kept_with_its_attempt(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        [job_id] = await add(backend, new_job())
        _, lease = await take_one(backend)
        assert await backend.progress.report_progress(lease, 1, 10, "starting")
        clock.advance(2)
        assert await backend.progress.report_progress(lease, 4, 10, "resizing")

        record = await stored(backend, job_id)
        progress = record.current_progress()
        assert progress is not None
        assert (progress.done, progress.total, progress.note) == (4, 10, "resizing")
        assert (progress.attempt, progress.at) == (1, clock.now())
        assert progress.describe() == "4/10 (40%) resizing"

    async def test_without_a_total_or_note(self, backend: Backend) -> None:
        [job_id] = await add(backend, new_job())
        _, lease = await take_one(backend)
        assert await backend.progress.report_progress(lease, 2.5, None, None)

        progress = (await stored(backend, job_id)).current_progress()
        assert progress is not None
        assert (progress.done, progress.total, progress.note) == (2.5, None, None)

    async def test_a_stale_lease_reports_nothing(self, backend: Backend) -> None:
        [job_id] = await add(backend, new_job())
        _, lease = await take_one(backend)
        assert not await backend.progress.report_progress(Lease(job_id, "f" * 32), 1, 2, "x")
        assert not await backend.progress.report_progress(Lease("missing", lease.token), 1, 2, None)
        assert (await stored(backend, job_id)).current_progress() is None

    async def test_the_last_report_stays_after_the_job_ends(self, backend: Backend) -> None:
        [job_id] = await add(backend, new_job())
        _, lease = await take_one(backend)
        assert await backend.progress.report_progress(lease, 10, 10, "done")
        assert await backend.complete(lease, None)
        assert not await backend.progress.report_progress(lease, 11, 10, "late")

        progress = (await stored(backend, job_id)).current_progress()
        assert progress is not None and (progress.done, progress.note) == (10, "done")

    async def test_a_retry_does_not_show_the_last_attempts_progress(self, backend: Backend) -> None:
        [job_id] = await add(backend, new_job())
        _, lease = await take_one(backend)
        assert await backend.progress.report_progress(lease, 5, 10, "half")
        assert await backend.fail(lease, Failure("boom", None, retry_in=0.0))
        [job] = await take(backend)

        record = await stored(backend, job_id)
        assert job.attempts == 2 and record.current_progress() is None
        assert record.progress is not None and record.progress.attempt == 1
