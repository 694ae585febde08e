"""Test apps and eager mode: a memory store per test, and jobs run inline as enqueued.

Eager mode runs each job once, inline, through the same executor a worker uses, so argument
checks, timeouts and `current_job()` behave as in production; delays are ignored and a
failure dead-letters the job at once (no retries) and, by default, re-raises the task's
exception to the caller. ``current_job().progress(...)`` is checked and kept on the store
eager mode runs on (the test app's memory store, or the app's own store if it keeps
progress) as a worker keeps it: the last report is there when the job has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from conveyor.app import Conveyor, EagerRunner
from conveyor.backends.capabilities import Progress
from conveyor.backends.memory import MemoryBackend
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.errors import JobControl, JobFailed
from conveyor.handle import JobHandle
from conveyor.job import Failure, JobRecord, Lease, NewJob, Routing
from conveyor.settings import load_settings
from conveyor.worker.executor import ThreadTimeout, run_job
from conveyor.worker.outcome import Deferred, Failed, Succeeded
from conveyor.worker.progress import ProgressWriter

if TYPE_CHECKING:
    from conveyor.backends.base import Backend

T = TypeVar("T")


# -- test apps -----------------------------------------------------------------------------
def make_test_app(*, clock: Clock | None = None, eager: bool = False, **settings: Any) -> Conveyor:
    """A fresh app on its own `memory://` store.

    ``settings`` override the environment (``max_retries=0``, ``job_timeout=5``, ...);
    ``eager=True`` runs jobs as they are enqueued (and ``app.eager = True`` works later).
    """
    app = Conveyor("memory://", settings=load_settings(**settings), clock=clock or SYSTEM_CLOCK)
    app.eager, app.eager_runner = eager, _Inline()
    return app


@contextlib.contextmanager
def use_memory_backend(app: Conveyor, *, clock: Clock | None = None) -> Iterator[MemoryBackend]:
    """Point ``app`` at a fresh, empty memory store (and ``clock``, if given) until exit.

    For apps defined in your own code with a production URL: their tasks stay registered,
    only the storage (and time) is swapped, and put back afterwards. Inside the block
    ``app.eager = True`` runs jobs as they are enqueued, as `eager` does.
    """
    saved = (app.url, app.clock, app._backend, app._opened, app.eager_runner)
    new_clock = clock if clock is not None else app.clock
    backend = MemoryBackend("memory://", clock=new_clock)
    app.url, app.clock, app._backend, app._opened = "memory://", new_clock, backend, False
    app.eager_runner = app.eager_runner or _Inline()
    try:
        yield backend
    finally:
        app.url, app.clock, app._backend, app._opened, app.eager_runner = saved


# -- eager mode ----------------------------------------------------------------------------
@contextlib.contextmanager
def eager(app: Conveyor, *, raise_errors: bool = True) -> Iterator[Conveyor]:
    """Run every job enqueued on ``app`` inline, at once, until the block exits.

    With ``raise_errors`` (the default) a job that fails re-raises the task's exception to
    the code that enqueued it (or `JobFailed` when there is no task exception, e.g. a
    `Fail`); the job is dead-lettered either way.
    """
    saved = (app.eager, app.eager_runner)
    app.eager, app.eager_runner = True, _Inline(raise_errors)
    try:
        yield app
    finally:
        app.eager, app.eager_runner = saved


def inline_runner(raise_errors: bool = True) -> EagerRunner:
    """The `EagerRunner` that `eager` installs: each job runs once, inline, as enqueued.

    An app with ``app.eager = True`` and no runner of its own gets this one.
    """
    return _Inline(raise_errors)


@dataclass(frozen=True, slots=True)
class _Inline:
    """The app's `EagerRunner` here: `run_eager`, with the ``raise_errors`` of `eager`."""

    raise_errors: bool = True

    def run(self, app: Conveyor, jobs: Sequence[NewJob]) -> list[JobHandle[Any]]:
        return run_eager(app, jobs, raise_errors=self.raise_errors)

    async def run_async(self, app: Conveyor, jobs: Sequence[NewJob]) -> list[JobHandle[Any]]:
        return await run_eager_async(app, jobs, raise_errors=self.raise_errors)


def run_eager(
    app: Conveyor, jobs: Sequence[NewJob], *, raise_errors: bool | None = None
) -> list[JobHandle[Any]]:
    """Store ``jobs`` and run each new one once, now; what `Conveyor.enqueue_many` does in
    eager mode. Works from sync code, and from sync code called inside an event loop.
    """
    stored = _undelayed(jobs)
    results = app.backend.enqueue_sync(stored)
    fresh = [job for job, r in zip(stored, results, strict=True) if not r.existing]
    errors = in_thread(lambda: _run_all(app, fresh)) if fresh else []
    _raise_first(app, errors, raise_errors)
    return [JobHandle(app, r.id, existing=r.existing) for r in results]


async def run_eager_async(
    app: Conveyor, jobs: Sequence[NewJob], *, raise_errors: bool | None = None
) -> list[JobHandle[Any]]:
    """`run_eager` for async code: the jobs run on the caller's event loop."""
    stored = _undelayed(jobs)
    backend = await app.open()
    results = await backend.enqueue(stored)
    fresh = [job for job, r in zip(stored, results, strict=True) if not r.existing]
    errors = await _run_all(app, fresh)
    _raise_first(app, errors, raise_errors)
    return [JobHandle(app, r.id, existing=r.existing) for r in results]


def _undelayed(jobs: Sequence[NewJob]) -> list[NewJob]:
    # Eager mode ignores delay= and run_at=: the job is due now, so it can run now.
    return [replace(job, run_at=None, delay=None) for job in jobs]


@dataclass(slots=True)
class _Failed:
    record: JobRecord
    outcome: Failed


async def _run_all(app: Conveyor, jobs: Sequence[NewJob]) -> list[_Failed]:
    backend = await app.open()
    worker_id = f"eager-{socket.gethostname()}-{os.getpid()}"
    failed: list[_Failed] = []
    threads = ThreadPoolExecutor(1, thread_name_prefix="conveyor-eager")
    progress = ProgressWriter(backend.progress if backend.supports(Progress) else None)
    try:
        for job in jobs:
            lease_seconds = job.timeout + app.settings.lease_seconds
            record = await _claim_exact(backend, job, worker_id, lease_seconds)
            if record is None:
                continue  # another worker took it first; it runs there
            outcome = await _run_once(app, backend, record, worker_id, threads, progress)
            if outcome is not None:
                failed.append(_Failed(await backend.get(record.id) or record, outcome))
    finally:
        # A sync task stuck past its timeout keeps its thread; do not wait for it.
        threads.shutdown(wait=False)
    return failed


async def _claim_exact(
    backend: Backend, job: NewJob, worker_id: str, lease_seconds: float
) -> JobRecord | None:
    """Claim this very job; older jobs claimed on the way are given back at once."""
    routing = Routing(queues=(job.queue,), priorities=(job.priority,), tasks=(job.task,))
    others: list[JobRecord] = []
    try:
        while True:
            claimed = await backend.claim(worker_id, routing, 1, lease_seconds)
            if not claimed:
                return None
            if claimed[0].id == job.id:
                return claimed[0]
            others.append(claimed[0])
    finally:
        for other in others:
            assert other.lease_token is not None
            await backend.release(Lease(other.id, other.lease_token))


async def _run_once(
    app: Conveyor,
    backend: Backend,
    record: JobRecord,
    worker_id: str,
    threads: ThreadPoolExecutor,
    progress: ProgressWriter,
) -> Failed | None:
    """Run the job once and tell the store; how it failed, if it ended dead (else ``None``)."""
    assert record.lease_token is not None
    lease = Lease(record.id, record.lease_token)
    reports = progress.for_job(lease)
    try:
        ran = await run_job(
            app, record, worker_id, threads, None if reports is None else reports.report
        )
        if reports is not None:
            await reports.flush()  # the last report, before the job ends
    finally:
        if reports is not None:
            reports.close()
    match ran:
        case Succeeded(result):
            await backend.complete(lease, result)
            return None
        case Deferred(delay, _, _, exception):  # RateLimited: eager mode runs each job once, now
            failed = Failed(
                Failure(
                    f"RateLimited: the task asked to wait {delay:g}s (eager mode does not "
                    "wait; use drain() with a real worker to test waiting)"
                ),
                exception,
            )
        case Failed(failure) as failed:
            if failed.retrying:
                error = f"{failure.error} (eager mode: no retries)"
                failed = replace(failed, failure=replace(failure, error=error, retry_in=None))
    await backend.fail(lease, failed.failure)
    return failed


def _raise_first(app: Conveyor, errors: list[_Failed], raise_errors: bool | None) -> None:
    if raise_errors is None:
        runner = app.eager_runner
        raise_errors = runner.raise_errors if isinstance(runner, _Inline) else True
    if not errors or not raise_errors:
        return
    first = errors[0]
    exc = first.outcome.exception
    if isinstance(exc, Exception) and not isinstance(exc, (JobControl, ThreadTimeout)):
        raise exc
    record = first.record
    raise JobFailed(
        f"job {record.id} ({record.task}) ended dead in eager mode: {record.last_error}",
        record,
    ) from exc


def in_thread(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` on a private event loop in a short-lived thread and return its result.

    A thread, so that sync code called from inside a running event loop (a sync
    ``enqueue`` in an async test) can still run async task code to completion.
    """
    box: dict[str, Any] = {}

    async def main() -> T:
        return await work()

    def target() -> None:
        try:
            box["value"] = asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="conveyor-testing", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value
