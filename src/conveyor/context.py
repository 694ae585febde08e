"""The running job, visible to task code through `current_job()`."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from conveyor.errors import ConveyorError


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


_current: ContextVar[JobContext | None] = ContextVar("conveyor_job", default=None)


def current_job() -> JobContext:
    """The job the calling task runs in; raises outside a job."""
    ctx = _current.get()
    if ctx is None:
        raise ConveyorError("current_job() was called outside a running job")
    return ctx
