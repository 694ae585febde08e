"""Proof, checked by mypy, that the Django and FastAPI helpers keep a task's signature.

As in `test_enqueue_types.py`: nothing here runs; each ``# type: ignore[code]`` is a claim
that mypy reports that error on that line (``warn_unused_ignores`` is on), and
`test_mypy_runs.py` runs mypy in the test suite.
"""

from __future__ import annotations

from typing import assert_type

from conveyor import Conveyor, JobHandle
from conveyor.contrib.django.transactions import enqueue_on_commit, on_commit
from conveyor.contrib.fastapi import Enqueuer

app = Conveyor("memory://")


@app.task
def receipt(order_id: int, *, copy: bool = False) -> str:
    """A sync task with a result."""
    return str(order_id)


def django_on_commit() -> None:
    assert_type(enqueue_on_commit(receipt, 7, copy=True), None)
    assert_type(on_commit(receipt.options(delay=5)).enqueue(7), None)
    enqueue_on_commit(receipt, "seven")  # type: ignore[arg-type]
    enqueue_on_commit(receipt, 7, colour="red")  # type: ignore[call-arg]
    on_commit(receipt).enqueue()  # type: ignore[call-arg]


async def fastapi_enqueuer(enqueue: Enqueuer) -> None:
    assert_type(await enqueue(receipt, 7), JobHandle[str])
    assert_type(await enqueue(receipt.options(queue="mail"), 7, copy=True), JobHandle[str])
    await enqueue(receipt, "seven")  # type: ignore[arg-type]
