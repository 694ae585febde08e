"""Bad input never stops a worker: each case ends its own job and the next job still runs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conveyor import Conveyor, PayloadTooLarge, Priority, SerializationError, State, Worker
from conveyor.job import JobQuery, JobRecord, NewJob
from conveyor.testing import make_test_app


async def all_jobs(app: Conveyor) -> list[JobRecord]:
    return await app.backend.admin.query(JobQuery(limit=1000))


def register_ok(app: Conveyor) -> list[int]:
    """A healthy task enqueued after each bad case, to show the worker kept going."""
    seen: list[int] = []

    @app.task(name="ok")
    async def ok(n: int) -> int:
        seen.append(n)
        return n

    return seen


async def run_burst(app: Conveyor, **options: object) -> Worker:
    worker = Worker(app, burst=True, concurrency=1, reaper=False, **options)  # type: ignore[arg-type]
    assert await worker.run() == 0
    return worker


async def test_arguments_json_cannot_represent_fail_at_enqueue(app: Conveyor) -> None:
    seen = register_ok(app)

    @app.task
    async def schedule(when: str) -> None: ...

    # When an argument is not JSON, Then enqueue refuses it, naming the argument
    with pytest.raises(SerializationError, match=r"^kwargs\['when'\] is a timedelta"):
        await schedule.enqueue_async(when=timedelta(hours=1))  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match=r"^args\[0\] is a set"):
        schedule.enqueue({"x"})  # type: ignore[arg-type]
    assert await all_jobs(app) == []
    app.get_task("ok").enqueue(1)
    await run_burst(app)
    assert seen == [1]


async def test_a_payload_over_the_limit_fails_at_enqueue_and_stores_nothing() -> None:
    app = make_test_app(max_payload_bytes=2048)
    seen = register_ok(app)

    @app.task
    async def upload(blob: str) -> None: ...

    with pytest.raises(PayloadTooLarge, match=r"largest: kwargs\['blob'\]"):
        upload.enqueue(blob="x" * 5000)
    assert await all_jobs(app) == []
    app.get_task("ok").enqueue(2)
    await run_burst(app)
    assert seen == [2]


async def test_a_job_for_a_task_this_worker_does_not_have_is_dead_as_unknown_task(
    app: Conveyor,
) -> None:
    seen = register_ok(app)
    # Given a newer deploy (another app) that has a task this worker's app lacks
    newer = make_test_app()

    @newer.task(name="reports.build")
    def build(month: str) -> None: ...

    job = newer.build(build.call("2024-01"))
    app.backend.enqueue_sync([job])
    app.get_task("ok").enqueue(3)
    # When this worker runs the queue
    worker = await run_burst(app)
    # Then the unknown job is dead with a clear reason, and the rest ran
    record = app.job(job.id).info()
    assert record.state is State.DEAD
    assert record.last_error is not None
    assert record.last_error.startswith("unknown_task: no task named 'reports.build'")
    assert "registered: ok" in record.last_error
    assert seen == [3]
    assert (worker.counts.dead, worker.counts.succeeded) == (1, 1)


async def test_a_corrupted_payload_is_dead_as_decode_error(app: Conveyor) -> None:
    seen = register_ok(app)
    corrupt = NewJob(
        task="ok",
        queue="default",
        priority=Priority.HIGH,
        payload=b"{not json",
        max_retries=3,
        timeout=5,
    )
    await app.backend.enqueue([corrupt])
    app.get_task("ok").enqueue(4)
    await run_burst(app)
    record = app.job(corrupt.id).info()
    assert record.state is State.DEAD
    assert record.attempts == 1
    assert record.last_error is not None and record.last_error.startswith("decode_error:")
    assert record.payload == b"{not json"  # kept for inspection
    assert seen == [4]


async def test_arguments_that_do_not_fit_the_signature_are_dead_without_retries(
    app: Conveyor,
) -> None:
    seen = register_ok(app)
    wrong = NewJob(
        task="ok",
        queue="default",
        priority=Priority.HIGH,
        payload=b'{"args": [1, 2], "kwargs": {"extra": true}}',
        max_retries=5,
        timeout=5,
    )
    app.backend.enqueue_sync([wrong])
    app.get_task("ok").enqueue(5)
    await run_burst(app)
    record = app.job(wrong.id).info()
    assert (record.state, record.attempts) == (State.DEAD, 1)
    assert record.last_error is not None and record.last_error.startswith("bad_arguments:")
    assert "do not fit ok(n: " in record.last_error
    assert "too many positional arguments" in record.last_error
    assert seen == [5]


@pytest.mark.parametrize("kind", ["async", "sync"])
@pytest.mark.parametrize("error", [SystemExit, KeyboardInterrupt])
async def test_system_exit_and_keyboard_interrupt_in_a_task_only_fail_the_job(
    app: Conveyor, kind: str, error: type[BaseException]
) -> None:
    seen = register_ok(app)

    if kind == "async":

        @app.task(retries=1, backoff=0)
        async def rude() -> None:
            raise error

    else:

        @app.task(retries=1, backoff=0)
        def rude() -> None:
            raise error

    handle = rude.options(priority="high").enqueue()
    app.get_task("ok").enqueue(6)
    # When the worker runs both (the rude one first, retried once at once)
    worker = await run_burst(app)
    # Then the job failed twice and is dead; the worker survived and ran the next job
    record = handle.info()
    assert (record.state, record.attempts) == (State.DEAD, 2)
    assert record.last_error is not None and error.__name__ in record.last_error
    assert seen == [6]
    assert (worker.counts.retried, worker.counts.dead, worker.counts.succeeded) == (1, 1, 1)


async def test_a_task_raising_cancelled_error_itself_fails_instead_of_looping() -> None:
    # Given a task that raises CancelledError on its own (no one cancelled it)
    import asyncio

    from conveyor import Conveyor, State, Worker

    app = Conveyor("memory://")

    @app.task(retries=0)
    async def cancels_itself() -> None:
        raise asyncio.CancelledError()

    handle = await cancels_itself.enqueue_async()
    # When a burst worker runs it
    worker = Worker(app, burst=True, concurrency=1)
    assert await worker.run() == 0
    # Then the job is dead with the reason, not released back to ready
    info = await handle.info_async()
    assert info.state is State.DEAD
    assert info.last_error is not None and "CancelledError" in info.last_error
    assert worker.counts.released == 0
