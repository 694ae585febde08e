"""Middleware: the onion's order, enqueue middleware, exceptions, and the built-ins."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from conveyor import Conveyor, Fail, State, Worker, current_job
from conveyor.errors import ConfigError
from conveyor.handle import JobHandle
from conveyor.middleware import (
    CorrelationIdFilter,
    EnqueueContext,
    EnqueueNext,
    ExecutionContext,
    JobNext,
    correlation_id,
    correlation_scope,
    log_job,
)
from conveyor.testing import drain

# -- order -----------------------------------------------------------------------------------


def test_app_middleware_wraps_task_middleware_in_registration_order(app: Conveyor) -> None:
    seen: list[str] = []

    def layer(name: str) -> Any:
        async def mw(ctx: ExecutionContext, call_next: JobNext) -> Any:
            seen.append(f"{name}>")
            value = await call_next()
            seen.append(f"<{name}")
            return value

        return mw

    app.middleware(layer("a"))
    app.use(layer("b"))

    @app.task(middleware=[layer("t1"), layer("t2")])
    def work() -> str:
        seen.append("task")
        return "done"

    @app.task
    def plain() -> None:
        seen.append("plain")

    # Given a job of each task
    handle = work.enqueue()
    # When a worker runs them
    drain(app).raise_on_failure()
    # Then app middleware is outermost, in registration order, then the task's own
    assert seen[:9] == ["a>", "b>", "t1>", "t2>", "task", "<t2", "<t1", "<b", "<a"]
    assert handle.result() == "done"
    plain.enqueue()
    seen.clear()
    drain(app).raise_on_failure()
    assert seen == ["a>", "b>", "plain", "<b", "<a"]  # task middleware is the task's alone


def test_middleware_sees_the_job_and_may_change_arguments(app: Conveyor) -> None:
    seen: dict[str, Any] = {}

    @app.middleware
    async def double(ctx: ExecutionContext, call_next: JobNext) -> Any:
        seen.update(
            task=ctx.task.name,
            attempt=ctx.attempt,
            queue=ctx.queue,
            job=current_job().id == ctx.job.id,
        )
        ctx.args = [a * 2 for a in ctx.args]
        return await call_next()

    @app.task(queue="maths")
    async def add(a: int, b: int) -> int:
        return a + b

    handle = add.enqueue(1, 2)
    drain(app).raise_on_failure()
    assert handle.result() == 6
    assert seen == {"task": add.name, "attempt": 1, "queue": "maths", "job": True}


# -- exceptions ------------------------------------------------------------------------------


def test_middleware_can_turn_an_exception_into_a_result_or_a_failure(app: Conveyor) -> None:
    async def fallback(ctx: ExecutionContext, call_next: JobNext) -> Any:
        try:
            return await call_next()
        except LookupError:
            return "fallback"

    async def no_retry(ctx: ExecutionContext, call_next: JobNext) -> Any:
        try:
            return await call_next()
        except ValueError as exc:
            raise Fail(f"bad input: {exc}") from exc

    @app.task(middleware=[fallback], retries=3)
    def lookup() -> str:
        raise KeyError("missing")

    @app.task(middleware=[no_retry], retries=3)
    def parse() -> None:
        raise ValueError("not a number")

    found, parsed = lookup.enqueue(), parse.enqueue()
    report = drain(app)
    assert found.result() == "fallback"
    record = parsed.info()
    assert record.state is State.DEAD and record.attempts == 1  # no retries: Fail
    assert record.last_error == "Fail: bad input: not a number"
    assert report.retried == 0


def test_a_base_exception_from_middleware_fails_the_job_not_the_worker(app: Conveyor) -> None:
    @app.middleware
    async def explode(ctx: ExecutionContext, call_next: JobNext) -> Any:
        raise KeyboardInterrupt

    @app.task(retries=0)
    async def work() -> None: ...

    handle = work.enqueue()
    drain(app)
    record = handle.info()
    assert record.state is State.DEAD
    assert record.last_error is not None and "KeyboardInterrupt" in record.last_error


def test_middleware_sees_a_sync_tasks_system_exit_as_an_exception(app: Conveyor) -> None:
    caught: list[BaseException] = []

    @app.middleware
    async def watch(ctx: ExecutionContext, call_next: JobNext) -> Any:
        try:
            return await call_next()
        except Exception as exc:
            caught.append(exc)
            raise

    @app.task(retries=0)
    def work() -> None:
        raise SystemExit(3)

    handle = work.enqueue()
    drain(app)
    assert handle.state() is State.DEAD
    assert len(caught) == 1 and isinstance(caught[0].__cause__, SystemExit)


# -- enqueue middleware ----------------------------------------------------------------------


async def test_enqueue_middleware_adds_headers_sync_and_async(app: Conveyor) -> None:
    calls: list[bool] = []

    @app.enqueue_middleware
    async def tenant(ctx: EnqueueContext, call_next: EnqueueNext) -> list[JobHandle[Any]]:
        calls.append(ctx.is_async)
        for job in ctx.jobs:
            job.headers["tenant"] = "acme"
        handles = await call_next()
        assert [h.id for h in handles] == [j.id for j in ctx.jobs]
        return handles

    @app.task
    def work() -> None: ...

    first = work.enqueue()
    second = await work.enqueue_async()
    assert first.info().headers["tenant"] == "acme"
    assert (await second.info_async()).headers["tenant"] == "acme"
    assert calls == [False, True]


def test_sync_enqueue_refuses_middleware_that_awaits_io(app: Conveyor) -> None:
    @app.enqueue_middleware
    async def slow(ctx: EnqueueContext, call_next: EnqueueNext) -> list[JobHandle[Any]]:
        await asyncio.sleep(0)
        return await call_next()

    @app.task
    def work() -> None: ...

    with pytest.raises(ConfigError, match="enqueue_async"):
        work.enqueue()


# -- built-ins -------------------------------------------------------------------------------


def test_correlation_id_travels_from_enqueue_to_logs_and_child_jobs(
    app: Conveyor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(CorrelationIdFilter())
    children: list[JobHandle[Any]] = []

    @app.task
    async def child() -> str | None:
        return correlation_id()

    @app.task
    def parent() -> None:
        logging.getLogger("tests.app").info("parent working")
        children.append(child.enqueue())

    # Given a job enqueued inside a request's correlation scope
    with correlation_scope("req-42"):
        handle = parent.enqueue()
    assert correlation_id() is None
    # Then the id is in the job's headers
    assert handle.info().headers["correlation_id"] == "req-42"
    # When it runs and enqueues a child
    drain(app).raise_on_failure()
    # Then the child carries it, sees it while running, and every job log line has it
    assert children[0].info().headers["correlation_id"] == "req-42"
    assert children[0].result() == "req-42"
    task_line = next(r for r in caplog.records if r.name == "tests.app")
    assert task_line.correlation_id == "req-42"  # type: ignore[attr-defined]
    assert task_line.job_id == handle.id  # type: ignore[attr-defined]
    job_lines = [r for r in caplog.records if r.name == "conveyor.job"]
    assert len(job_lines) == 4
    assert {r.correlation_id for r in job_lines} == {"req-42"}  # type: ignore[attr-defined]


def test_a_job_enqueued_outside_any_scope_is_its_own_correlation_id(app: Conveyor) -> None:
    children: list[JobHandle[Any]] = []

    @app.task
    async def child() -> str | None:
        return correlation_id()

    @app.task
    async def root() -> str | None:
        children.append(child.enqueue())
        return correlation_id()

    # Given jobs enqueued outside any job or correlation scope
    a, b = root.enqueue(), root.enqueue()
    # Then they store no correlation header at all
    assert "correlation_id" not in a.info().headers
    assert "correlation_id" not in b.info().headers
    # When they run
    drain(app).raise_on_failure()
    # Then each sees its own job id as its correlation id, and its child inherits it
    assert (a.result(), b.result()) == (a.id, b.id)
    by_parent = {c.info().headers["correlation_id"] for c in children}
    assert by_parent == {a.id, b.id}
    assert {c.result() for c in children} == {a.id, b.id}
    # And a header the caller sets is kept as it is
    kept = root.options(headers={"correlation_id": "mine"}).enqueue()
    assert kept.info().headers["correlation_id"] == "mine"


def test_the_logging_middleware_writes_a_start_and_a_finish_line(
    app: Conveyor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="conveyor.job")

    @app.task(queue="mail", retries=1)
    async def send() -> None:
        if current_job().attempt == 1:
            raise RuntimeError("smtp down")

    handle = send.enqueue()
    drain(app).raise_on_failure()
    lines = [r for r in caplog.records if r.name == "conveyor.job"]
    messages = [r.getMessage() for r in lines]
    assert len(messages) == 4
    assert messages[0].endswith("started") and f"job {handle.id} {send.name}" in messages[0]
    assert "attempt 1, queue mail" in messages[0]
    assert " failed in " in messages[1] and messages[1].endswith("RuntimeError")
    assert "attempt 2" in messages[3] and " succeeded in " in messages[3]
    finish = lines[3]
    assert finish.outcome == "succeeded"  # type: ignore[attr-defined]
    assert finish.duration >= 0  # type: ignore[attr-defined]
    assert (finish.job_id, finish.task, finish.queue, finish.attempt) == (  # type: ignore[attr-defined]
        handle.id,
        send.name,
        "mail",
        2,
    )


def test_built_ins_can_be_removed(app: Conveyor, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="conveyor.job")
    app.middlewares.job.remove(log_job)

    @app.task
    def work() -> None: ...

    work.enqueue()
    drain(app).raise_on_failure()
    assert not [r for r in caplog.records if r.name == "conveyor.job"]


async def test_metrics_count_runs_per_task_queue_and_outcome(app: Conveyor) -> None:
    @app.task(queue="jobs", retries=1, backoff=0)
    def flaky(fail: bool) -> None:
        if fail and current_job().attempt == 1:
            raise RuntimeError("once")

    flaky.enqueue(True)
    flaky.enqueue(False)
    worker = Worker(app, burst=True, reaper=False)
    await worker.run()
    m = app.job_metrics
    assert m.count(flaky.name) == 3
    assert m.count(flaky.name, "jobs", "succeeded") == 2
    assert m.count(flaky.name, outcome="failed") == 1
    by_outcome = {s["outcome"]: s for s in worker.stats().tasks}
    assert by_outcome["succeeded"]["count"] == 2 and by_outcome["failed"]["count"] == 1
    assert by_outcome["succeeded"]["queue"] == "jobs"
    assert by_outcome["succeeded"]["seconds"] >= 0
