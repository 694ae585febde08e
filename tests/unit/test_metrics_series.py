"""The oldest-wait and attempts series: exact values, on the memory store and a fake clock."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tests.unit.partial_stores import partial_store

from conveyor import Conveyor, Fail, Worker
from conveyor.backends.base import Routing
from conveyor.clock import FakeClock
from conveyor.job import NewJob, Priority
from conveyor.metrics import Refresher, build_registry
from conveyor.metrics.collector import BACKEND_FAMILIES

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: bytes) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def wait_of(s: Samples, queue: str) -> float | None:
    return s.get(("conveyor_queue_oldest_wait_seconds", frozenset({("queue", queue)})))


def attempts(s: Samples, task: str, queue: str, result: str) -> float | None:
    key = frozenset({("task", task), ("queue", queue), ("result", result)})
    return s.get(("conveyor_job_attempts_total", key))


async def test_the_oldest_wait_per_queue_is_the_oldest_ready_jobs_age(
    app: Conveyor, clock: FakeClock
) -> None:
    @app.task(queue="mail")
    async def send() -> None: ...

    # Given a mail job enqueued at t0, another 20 s later, a report due in an hour, and a
    # queue whose only job is running
    t0 = clock.now()
    send.enqueue()
    clock.advance(20)
    send.enqueue()
    send.options(queue="reports", delay=3600).enqueue()
    send.options(queue="busy").enqueue()
    claimed = await app.backend.claim("w", Routing(queues=("busy",)), 1, 30.0)
    assert len(claimed) == 1
    clock.advance(10)
    worker = Worker(app, burst=True, reaper=False, queues=("none",))
    refresher = Refresher(app.backend.clone(), clock=clock)
    registry = build_registry(worker, refresher)
    # When the store is read
    await refresher.refresh()
    s = samples(generate_latest(registry))
    # Then mail's oldest job has waited 30 s; the other queues have none ready (0)
    assert wait_of(s, "mail") == clock.now() - t0 == 30
    assert wait_of(s, "reports") == 0
    assert wait_of(s, "busy") == 0
    # and a scheduled job waits from its due time (t0 + 20 + 3600), once due
    clock.advance(3600 + 20 + 5 - 30)
    await refresher.refresh()
    assert wait_of(samples(generate_latest(registry)), "reports") == 5
    # The family is the store's: a supervisor serves its own read, never its workers'.
    assert "conveyor_queue_oldest_wait_seconds" in BACKEND_FAMILIES


async def test_a_store_without_admin_reports_no_wait() -> None:
    store = partial_store("telemetry")
    await store.enqueue([NewJob("t", "q", Priority.NORMAL, b"[[], {}]", 0, 1.0)])
    refresher = Refresher(store)
    await refresher.refresh()
    assert refresher.view is not None and refresher.view.waits == {}


async def test_attempts_count_succeeded_and_failed_per_task_from_zero(app: Conveyor) -> None:
    @app.task(name="charge", queue="billing", retries=1, backoff=0)
    async def charge(fail: bool) -> None:
        if fail:
            raise ValueError("card declined")

    @app.task(name="refund", queue="billing")
    async def refund() -> None: ...

    @app.task(name="defer")
    async def defer() -> None:
        raise Fail("no retry")

    worker = Worker(app, burst=True, reaper=False, queues=("billing", "default", "other"))
    registry = build_registry(worker, None)
    # Before any job: every task's default queue shows both results at 0, so rate() of
    # failures over attempts is defined from the start
    s = samples(generate_latest(registry))
    for task, queue in (("charge", "billing"), ("refund", "billing"), ("defer", "default")):
        assert attempts(s, task, queue, "succeeded") == 0
        assert attempts(s, task, queue, "failed") == 0
    # When two charges succeed, one fails twice (retried, then dead), defer dies at once
    # and a charge runs on another queue
    charge.enqueue(False)
    charge.enqueue(False)
    charge.enqueue(True)
    defer.enqueue()
    charge.options(queue="other").enqueue(False)
    assert await worker.run() == 0
    s = samples(generate_latest(registry))
    # Then the counts are exact, per task and queue
    assert attempts(s, "charge", "billing", "succeeded") == 2
    assert attempts(s, "charge", "billing", "failed") == 2
    assert attempts(s, "defer", "default", "failed") == 1
    assert attempts(s, "charge", "other", "succeeded") == 1
    assert attempts(s, "refund", "billing", "succeeded") == 0
    # and they agree with the worker's own outcome counters
    c = worker.counts
    total = sum(v for (name, _), v in s.items() if name == "conveyor_job_attempts_total")
    assert total == c.succeeded + c.retried + c.dead == 6
