"""Enqueue by name: a producer that does not import a task's code stores jobs a worker runs.

``app.enqueue("billing.charge", ...)`` stores the job under that name; the producer's app
registers nothing, and a worker whose app has the task runs it. A task registered on the
producer's own app is used as it is, arguments checked.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import pytest

from conveyor import ConfigError, Conveyor, UnknownTask
from conveyor.job import Priority, State
from conveyor.task import BadArguments
from conveyor.worker import Worker


def worker_app(url: str, calls: list[Any]) -> Conveyor:
    app = Conveyor(url)

    @app.task(name="billing.charge", queue="billing")
    def charge(customer: int, amount: int, currency: str = "USD") -> str:
        calls.append((customer, amount, currency))
        return f"{customer}:{amount}{currency}"

    return app


async def test_a_job_enqueued_by_name_runs_on_a_worker_that_has_the_task(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    # Given a producer whose app registers no task at all
    producer = Conveyor(url)
    # When it enqueues by name, sync and async, with options on the second
    first = producer.enqueue("billing.charge", 7, 1200, currency="EUR")
    second = await (
        producer.task_by_name("billing.charge")
        .options(queue="billing", priority="high")
        .enqueue_async(8, 300)
    )
    assert producer.tasks == {}  # nothing registered: this process cannot run it
    stored = await producer.backend.get(second.id)
    assert stored is not None
    assert (stored.task, stored.queue, stored.priority) == (
        "billing.charge",
        "billing",
        Priority.HIGH,
    )
    first_record = await producer.backend.get(first.id)
    assert first_record is not None and first_record.queue == "default"
    await producer.aclose()
    # Then a worker of an app that has the task runs both, with their arguments
    calls: list[Any] = []
    app = worker_app(url, calls)
    await Worker(app, burst=True, concurrency=1, queues=("default", "billing")).run()
    assert sorted(calls) == [(7, 1200, "EUR"), (8, 300, "USD")]
    for handle, result in ((first, "7:1200EUR"), (second, "8:300USD")):
        record = await app.backend.get(handle.id)
        assert record is not None and record.state is State.SUCCEEDED
        assert await app.job(handle.id).result_async() == result
    await app.aclose()


async def test_wrong_arguments_by_name_are_not_caught_at_enqueue_but_fail_the_job(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    producer = Conveyor(url)
    # Given a call that does not fit the task's signature (no signature to check it here)
    handle = producer.task_by_name("billing.charge").options(retries=0).enqueue(amount_typo=1)
    await producer.aclose()
    app = worker_app(url, [])
    await Worker(app, burst=True, concurrency=1, queues=("default",)).run()
    # Then the worker fails the job, saying why
    record = await app.backend.get(handle.id)
    assert record is not None and record.state is State.DEAD
    assert (record.last_error or "").startswith("bad_arguments: the arguments do not fit")
    await app.aclose()


def test_a_registered_task_is_used_as_is_with_its_checks(app: Conveyor) -> None:
    calls: list[Any] = []

    @app.task(name="billing.charge", queue="billing")
    def charge(customer: int, amount: int) -> None:
        calls.append((customer, amount))

    assert app.task_by_name("billing.charge") is charge
    with pytest.raises(BadArguments, match="did you mean 'amount'"):
        app.enqueue("billing.charge", 1, amont=2)
    handle = app.enqueue("billing.charge", 1, 2)
    assert handle.id


def test_a_name_only_task_cannot_be_called_and_a_bad_name_is_refused(app: Conveyor) -> None:
    task = app.task_by_name("billing.refund")
    assert app.task_by_name("billing.refund") is task  # made once per app
    with pytest.raises(UnknownTask, match="is not registered in this process"):
        task(1)
    with pytest.raises(ConfigError, match="task name 'billing refund' is not valid"):
        app.enqueue("billing refund", 1)
    assert "billing.refund" not in app.tasks


def test_name_only_tasks_go_with_their_app(tmp_path: Path) -> None:
    # Given a producer app that enqueued by name, then was dropped
    producer = Conveyor(f"sqlite:///{tmp_path / 'jobs.db'}")
    producer.enqueue("billing.charge", 1)
    producer.close()
    gone = weakref.ref(producer)
    del producer
    gc.collect()
    # Then nothing kept it alive (its name-only tasks are its own, not a module's)
    assert gone() is None
