"""The running job, visible to task code through `current_job()`."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from conveyor.attempts import check_progress
from conveyor.errors import ConveyorError

#: What the worker hands a job's context to pass progress reports on (done, total, note).
ProgressSink = Callable[[float, float | None, str | None], None]


@dataclass(slots=True, frozen=True)
class JobContext:
    """What a task may want to know about the job it is running in."""

    id: str
    task: str
    queue: str
    attempt: int
    max_retries: int
    worker_id: str
    headers: dict[str, Any] = field(default_factory=dict)
    _progress: ProgressSink | None = field(default=None, repr=False, compare=False)

    def progress(self, done: float, total: float | None = None, note: str | None = None) -> None:
        """Report how far the job has got: ``done`` of ``total`` (when known), and a note.

        Call it as often as you like, from ``async def`` and plain ``def`` tasks alike: the
        worker keeps the latest report and writes it to the store at most once a second and
        once more when the job ends, so the dashboard, ``conveyor jobs show`` and
        `JobHandle.progress` show it. It never blocks and never fails the job on a store
        problem; a value that is not a number (or a negative ``done``, a ``total`` not above
        0) raises `ValueError` at once. On a store without progress (SQS) it checks the
        values and keeps nothing; eager mode keeps them on the store it runs on, as a
        worker does.
        """
        values = check_progress(done, total, note)
        if self._progress is not None:
            self._progress(*values)


_current: ContextVar[JobContext | None] = ContextVar("conveyor_job", default=None)


def current_job() -> JobContext:
    """The job the calling task runs in; raises outside a job."""
    ctx = _current.get()
    if ctx is None:
        raise ConveyorError("current_job() was called outside a running job")
    return ctx
