"""Proof, checked by mypy, that `Task[P, R]` keeps the decorated function's signature.

Nothing here runs work: the checks live in functions that are never called. mypy (strict,
so ``warn_unused_ignores`` is on) reads this file; every ``# type: ignore[code]`` below is
therefore a claim that mypy reports that error on that line, and `test_mypy_runs.py` runs
mypy in the test suite so a regression fails the tests.
"""

from __future__ import annotations

from typing import Any, assert_type

from conveyor import BoundTask, Conveyor, JobHandle, JobSpec, Task

app = Conveyor("memory://")


@app.task(queue="mail", priority="high", retries=3)
async def send(to: str, subject: str) -> None:
    """An async task without a result."""


@app.task
async def count_words(text: str, *, lower: bool = False) -> int:
    """An async task with a result, decorated without parentheses."""
    return len(text.split())


@app.task(timeout=10)
def sync_product(product_id: int) -> dict[str, int]:
    """A plain ``def`` task with a result."""
    return {"id": product_id}


@app.task
def no_args() -> list[str]:
    """A sync task without parameters, decorated without parentheses."""
    return []


@app.task(priority=10, backoff=[1.0, 5.0, 30.0])
def numeric_priority() -> None:
    """A numeric priority (larger runs first) and a backoff given as one delay per attempt."""


def check_task_types() -> None:
    """The decorator turns functions into tasks of their own parameters and results."""
    a: Task[[str, str], None] = send
    b: Task[[int], dict[str, int]] = sync_product
    c: Task[[], list[str]] = no_args
    d: Task[[int], dict[str, str]] = sync_product  # type: ignore[assignment]
    e: Task[[str], None] = send  # type: ignore[assignment]
    del a, b, c, d, e


def check_enqueue_results() -> None:
    """Handles carry the task's (awaited) result type."""
    assert_type(send.enqueue("a", subject="b"), JobHandle[None])
    assert_type(count_words.enqueue("x y", lower=True), JobHandle[int])
    assert_type(sync_product.enqueue(7), JobHandle[dict[str, int]])
    assert_type(no_args.enqueue(), JobHandle[list[str]])
    assert_type(count_words.enqueue("x").result(), int)
    assert_type(sync_product.enqueue(7).result(timeout=1.0), dict[str, int])


async def check_async_enqueue() -> None:
    """`enqueue_async` returns the same typed handle."""
    handle = await count_words.enqueue_async("x y")
    assert_type(handle, JobHandle[int])
    assert_type(await handle.result_async(), int)
    assert_type(await send.enqueue_async("a", "b"), JobHandle[None])


def check_options() -> None:
    """`.options(...)` keeps the signature through `BoundTask`."""
    bound = sync_product.options(delay=60, priority="low", unique_key="p-7")
    typed: BoundTask[[int], dict[str, int]] = bound
    del typed
    assert_type(bound.enqueue(7), JobHandle[dict[str, int]])
    assert_type(send.options(queue="urgent").enqueue("a", subject="b"), JobHandle[None])
    assert_type(bound.options(timeout=5).enqueue(8), JobHandle[dict[str, int]])
    assert_type(sync_product.call(7), JobSpec)
    assert_type(app.enqueue_many([sync_product.call(7), send.call("a", "b")]), list[JobHandle[Any]])


def check_wrong_calls_are_errors() -> None:
    """Each ignore below must be needed, or mypy reports it as unused."""
    send.enqueue("a")  # type: ignore[call-arg]
    send.enqueue("a", subject=1)  # type: ignore[arg-type]
    send.enqueue("a", "b", "c")  # type: ignore[call-arg]
    send.enqueue("a", topic="b")  # type: ignore[call-arg]
    sync_product.enqueue("7")  # type: ignore[arg-type]
    sync_product.call("7")  # type: ignore[arg-type]
    no_args.enqueue(1)  # type: ignore[call-arg]
    count_words.enqueue("x", True)  # type: ignore[call-arg]
    sync_product.options(delay=60).enqueue("7")  # type: ignore[arg-type]
    sync_product.options(delay=60).enqueue()  # type: ignore[call-arg]
    sync_product.options(dely=60)  # type: ignore[call-arg]
    wrong: JobHandle[str] = sync_product.enqueue(7)  # type: ignore[assignment]
    del wrong


async def check_wrong_async_calls_are_errors() -> None:
    """The same checks hold for `enqueue_async`."""
    await send.enqueue_async(1, subject="b")  # type: ignore[arg-type]
    await count_words.enqueue_async()  # type: ignore[call-arg]
