"""A handle on an enqueued job: its id, and reads of its state and result."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from conveyor.attempts import Attempt, JobProgress
from conveyor.errors import JobFailed, JobNotFound
from conveyor.job import FINAL_STATES, JobRecord, State
from conveyor.serialization import decode_value

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.backends.base import Backend

R = TypeVar("R")


class JobHandle(Generic[R]):
    """A job that was enqueued: its id, and reads of its state and result.

    ``existing`` is true when a unique key matched a job that was already queued or running,
    so this handle points at that job instead of a new one.
    """

    # One handle per enqueued job, thousands per `enqueue_many`: no per-object dict.
    __slots__ = ("app", "existing", "id")

    def __init__(self, app: Conveyor, job_id: str, *, existing: bool = False) -> None:
        self.app = app
        self.id = job_id
        self.existing = existing

    def __repr__(self) -> str:
        return f"<JobHandle {self.id}{' existing' if self.existing else ''}>"

    def info(self) -> JobRecord:
        """The stored job, read now (from sync code).

        `JobNotFound` when it is not there, and at once on a store that cannot read jobs
        by id (SQS), saying so; so also `state` and `result`.
        """
        backend = self.app.backend
        record = backend.get_sync(self.id)
        if record is None:
            raise missing_job(backend, self.id)
        return record

    async def info_async(self) -> JobRecord:
        """The stored job, read now (from async code)."""
        backend = await self.app.open()
        record = await backend.get(self.id)
        if record is None:
            raise missing_job(backend, self.id)
        return record

    def state(self) -> State:
        """The job's current state."""
        return self.info().state

    def progress(self) -> JobProgress | None:
        """The latest progress the job's current (or final) attempt reported, read now.

        ``None`` until that attempt reports (``current_job().progress``); a report of an
        earlier attempt is not shown. The worker writes reports at most once a second,
        and the last one when the job ends.
        """
        return self.info().current_progress()

    async def progress_async(self) -> JobProgress | None:
        """`progress` for async code."""
        return (await self.info_async()).current_progress()

    def attempts(self) -> list[Attempt]:
        """Every attempt the store kept for this job, oldest first, read now.

        Failed, dead and lost ones (the last `conveyor.attempts.KEEP`, each with its worker,
        start, end, error and traceback), then the one running or the one that succeeded.
        """
        return self.info().attempt_history()

    async def attempts_async(self) -> list[Attempt]:
        """`attempts` for async code."""
        return (await self.info_async()).attempt_history()

    def result(self, timeout: float | None = None) -> R:
        """Wait until the job is final and return its result; `JobFailed` if it did not succeed."""
        value: R = _outcome(_poll(self.info, timeout, time.sleep))
        return value

    async def result_async(self, timeout: float | None = None) -> R:
        """`result` for async code."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        while True:
            record = await self.info_async()
            if record.state in FINAL_STATES:
                value: R = _outcome(record)
                return value
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} is still {record.state} after {timeout}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)


def missing_job(backend: Backend, job_id: str) -> JobNotFound:
    """The error for a job ``backend`` did not return: gone, or never readable by id on a
    store that cannot read jobs (`Backend.reads_jobs`: SQS)."""
    if backend.reads_jobs:
        return JobNotFound(f"job {job_id} does not exist (or was pruned after retention)")
    scheme = backend.url.partition("://")[0] or backend.url
    return JobNotFound(
        f"job {job_id} cannot be looked up: the {scheme}:// store cannot read a job by its "
        "id, so its state and result cannot be read here; the worker's logs show how it "
        "ended (docs/backends.md)"
    )


def _poll(
    read: Callable[[], JobRecord], timeout: float | None, sleep: Callable[[float], None]
) -> JobRecord:
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while True:
        record = read()
        if record.state in FINAL_STATES:
            return record
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"job {record.id} is still {record.state} after {timeout}s")
        sleep(delay)
        delay = min(delay * 2, 0.2)


def _outcome(record: JobRecord) -> Any:
    if record.state is State.SUCCEEDED:
        return None if record.result is None else decode_value(record.result)
    raise JobFailed(
        f"job {record.id} ({record.task}) ended {record.state.value}: {record.last_error}",
        record,
    )
