"""Proof, checked by mypy, that `@app.cron` and `@app.periodic` keep the task's signature.

Nothing here runs at import beyond registration on a memory app; see test_enqueue_types.py.
"""

from __future__ import annotations

from typing import assert_type

from conveyor import Conveyor, JobHandle

app = Conveyor("memory://")


@app.cron("*/5 * * * *", timezone="Europe/Paris", queue="maintenance")
async def prune(days: int = 7) -> int:
    """A cron task with a result."""
    return days


@app.task
def rebuild(index: str) -> None:
    """An existing task, put on a periodic schedule below."""


hourly = app.periodic(every=3600, args=("products",), name="rebuild-hourly")(rebuild)


def checks() -> None:
    assert_type(prune.enqueue(3), JobHandle[int])
    assert_type(hourly.enqueue("products"), JobHandle[None])
    hourly.enqueue(1)  # type: ignore[arg-type]
    prune.enqueue("three")  # type: ignore[arg-type]
    app.cron("* * * * *", queue=1)  # type: ignore[arg-type]
