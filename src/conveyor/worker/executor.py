"""Run one claimed job: decode it, find its task, call it, and decide what happens next.

`prepare` finds the task and decodes the arguments once (the worker's admission reads them
too); `run_prepared` calls the task through the middleware; `run_job` does both. Nothing a
job does can escape this module: every exception, even ``SystemExit``,
``KeyboardInterrupt``, a custom `BaseException` or a `BaseExceptionGroup` raised by task
code, becomes a `Ran` outcome.
"""

from __future__ import annotations

import asyncio
import functools
import math
from concurrent.futures import Executor
from contextvars import copy_context
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from conveyor.context import JobContext, ProgressSink, _current
from conveyor.errors import Fail, RateLimited, Retry, SerializationError
from conveyor.job import Failure, JobRecord
from conveyor.limits import rate_limited_headers
from conveyor.middleware.chain import ExecutionContext, run_chain
from conveyor.serialization import decode_payload, encode_value
from conveyor.tracebacks import task_view
from conveyor.worker.backoff import retry_delay
from conveyor.worker.deadlines import deadline
from conveyor.worker.outcome import Deferred, Failed, Ran, Succeeded

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.task import Task

MAX_ERROR_CHARS = 64 * 1024


@dataclass(frozen=True, slots=True)
class Prepared:
    """A claimed job's task and decoded arguments, ready to run."""

    task: Task[Any, Any]
    args: list[Any]
    kwargs: dict[str, Any]


class TaskRaisedBaseException(Exception):
    """Carries a `BaseException` that is not an `Exception` out of task code as one."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(describe(original))
        self.original = original


class ThreadTimeout(Exception):
    """A sync task overran its timeout; its thread cannot be stopped."""


async def run_job(
    app: Conveyor,
    job: JobRecord,
    worker_id: str,
    threads: Executor,
    progress: ProgressSink | None = None,
) -> Ran:
    """Prepare ``job`` and run it; never raises except on cancellation."""
    prepared = prepare(app, job)
    if isinstance(prepared, Failed):
        return prepared
    return await run_prepared(app, job, prepared, worker_id, threads, progress)


async def run_prepared(
    app: Conveyor,
    job: JobRecord,
    prepared: Prepared,
    worker_id: str,
    threads: Executor,
    progress: ProgressSink | None = None,
) -> Ran:
    """Run the prepared ``job`` and return its outcome; never raises except on cancellation.

    ``progress`` receives the task's checked ``current_job().progress`` reports (none: they
    are checked and dropped).
    """
    task = prepared.task
    ctx = JobContext(
        id=job.id,
        task=job.task,
        queue=job.queue,
        attempt=job.attempts,
        max_retries=job.max_retries,
        worker_id=worker_id,
        headers=job.headers,
        _progress=progress,
    )
    call = ExecutionContext(app, job, task, prepared.args, prepared.kwargs, ctx)
    try:
        value = await _chain(call, job.timeout, threads)
    except asyncio.CancelledError as exc:
        current = asyncio.current_task()
        if current is None or current.cancelling():
            raise  # the worker cancelled it (shutdown, lost lease): the worker decides
        # Task code raised CancelledError itself (e.g. from a library it awaited): a plain
        # failure, or releasing it would run it again forever.
        return _retry_or_dead(job, task, exc, describe(exc) + " (raised by the task)")
    except Exception as exc:  # noqa: BLE001 - every task error becomes a job failure
        return _failed(job, task, exc)
    except BaseException as exc:  # noqa: BLE001 - reported as a failure, see `_wrapped`
        # Middleware's own SystemExit, KeyboardInterrupt or other BaseException (the task's
        # were turned into errors in `_call`): see `_wrapped`.
        return _failed(job, task, _wrapped(exc))
    try:
        if value is None:
            return Succeeded()
        # Results follow the same size limit as arguments (MAX_PAYLOAD_BYTES).
        return Succeeded(encode_value(value, max_bytes=app.settings.max_payload_bytes))
    except SerializationError as exc:
        return dead(f"result_error: the task's return value could not be stored: {exc}")


def prepare(app: Conveyor, job: JobRecord) -> Prepared | Failed:
    """The task and arguments to call, or a dead outcome saying why there are none."""
    task = app.tasks.get(job.task)
    if task is None:
        known = ", ".join(sorted(app.tasks)) or "none"
        return dead(
            f"unknown_task: no task named {job.task!r} is registered in this worker "
            f"(registered: {known}); deploy the task to the workers, then run "
            f"`conveyor failed retry {job.id}`"
        )
    try:
        args, kwargs = decode_payload(job.payload)
    except SerializationError as exc:
        return dead(f"decode_error: {exc}; the raw payload is kept on the job")
    if kwargs or len(args) != task.positional_arity:
        try:
            task.signature.bind(*args, **kwargs)
        except TypeError as exc:
            return dead(
                f"bad_arguments: the arguments do not fit {task.name}{task.signature}: {exc}"
            )
    return Prepared(task, args, kwargs)


def _failed(job: JobRecord, task: Task[Any, Any], exc: Exception) -> Failed | Deferred:
    """The outcome of a task that raised ``exc``."""
    if isinstance(exc, Retry):
        return _retry_or_dead(job, task, exc, exc.reason, exc.delay)
    if isinstance(exc, RateLimited):
        return _rate_limited(job, task, exc)
    if isinstance(exc, Fail):
        return dead(f"Fail: {exc.reason}", exc)
    if isinstance(exc, TaskRaisedBaseException):
        return _retry_or_dead(job, task, exc.original, describe(exc.original))
    if isinstance(exc, ThreadTimeout):
        return replace(_retry_or_dead(job, task, exc, f"timeout: {exc}"), timed_out_thread=True)
    if isinstance(exc, TimeoutError):
        msg = f"timeout: the task ran longer than its {job.timeout:g}s timeout and was cancelled"
        return _retry_or_dead(job, task, exc, msg)
    return _retry_or_dead(job, task, exc, describe(exc))


async def _chain(call: ExecutionContext, timeout: float, threads: Executor) -> Any:
    """The middleware onion (app's, then the task's) around the timed task call."""
    layers = [*call.app.middlewares.job, *call.task.middleware]
    token = _current.set(call.context)  # middleware may call current_job() too
    try:
        # `_call` turns the task's SystemExit (or any BaseException) into an Exception
        # before any middleware sees it; `run_prepared` catches middleware's own.
        return await run_chain(
            layers,
            call,
            lambda: _call(call.task, call.args, call.kwargs, call.context, timeout, threads),
        )
    finally:
        _current.reset(token)


async def _call(
    task: Task[Any, Any],
    args: list[Any],
    kwargs: dict[str, Any],
    ctx: JobContext,
    timeout: float,
    threads: Executor,
) -> Any:
    token = _current.set(ctx)
    try:
        if task.is_async:
            # In the job's own Task (a deadline, as asyncio.timeout but on one timer for
            # all jobs; not wait_for, which would start a Task per job).
            async with deadline(timeout):
                return await task.fn(*args, **kwargs)
        context = copy_context()
        loop = asyncio.get_running_loop()
        call = functools.partial(context.run, task.fn, *args, **kwargs)
        future = loop.run_in_executor(threads, call)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise ThreadTimeout(
                f"the sync task ran longer than its {timeout:g}s timeout; its thread cannot "
                "be interrupted, so the worker will finish its other jobs and restart"
            ) from None
    except (asyncio.CancelledError, Exception):
        raise
    except BaseException as exc:
        # The task's SystemExit or KeyboardInterrupt becomes an error here (`_wrapped`).
        raise _wrapped(exc) from exc
    finally:
        _current.reset(token)


def _wrapped(exc: BaseException) -> TaskRaisedBaseException:
    """``exc``, a BaseException that is not an Exception, as an error.

    Such an exception would get past every ``except Exception`` between the task and the
    worker: asyncio re-raises SystemExit and KeyboardInterrupt out of the event loop
    (killing the worker), and stores any other kind (a custom subclass, a
    BaseExceptionGroup from a task group) on the job's Task, where nobody settles the job
    and its slot stays taken for good. `_call` (the task's) and `run_prepared`
    (middleware's) catch them in the job's own frames and report them as errors; only a
    cancellation passes, for the worker to judge.
    """
    wrapped = TaskRaisedBaseException(exc)
    wrapped.__cause__ = exc
    return wrapped


def _retry_or_dead(
    job: JobRecord,
    task: Task[Any, Any],
    exc: BaseException,
    message: str,
    delay: float | None = None,
) -> Failed:
    if job.attempts > job.max_retries:
        runs = job.attempts
        return dead(f"{message} (gave up after {runs} attempt{'s' * (runs != 1)})", exc)
    # A delay, not a time: the store adds it to its own "now" (rule 9 of the design).
    # Retry(delay=...) is the task's input: one that is not a finite number of seconds >= 0
    # (NaN, inf, a string) must not reach the store, so the task's backoff decides instead.
    if not _usable_delay(delay):
        delay = None
    wait = delay if delay is not None else retry_delay(task, job.attempts)
    return Failed(Failure(message, format_traceback(exc), retry_in=wait), exc)


def _usable_delay(delay: object) -> bool:
    return (
        isinstance(delay, (int, float))
        and not isinstance(delay, bool)
        and math.isfinite(delay)
        and delay >= 0
    )


#: Longest delay `RateLimited` without ``retry_after`` waits.
MAX_RATE_LIMITED_DELAY = 300.0


def _rate_limited(job: JobRecord, task: Task[Any, Any], exc: RateLimited) -> Failed | Deferred:
    """Wait ``retry_after`` without using an attempt, within the task's own cap."""
    count, headers = rate_limited_headers(job)
    cap = task.limits.max_rate_limited
    if count > cap:
        message = (
            f"RateLimited: {exc.reason} (rescheduled {cap} times already, the task's "
            "max_rate_limited; this one counts as a failed attempt)"
        )
        return _retry_or_dead(job, task, exc, message, exc.retry_after)
    delay = exc.retry_after
    if delay is None:
        delay = min(2.0 ** (count - 1), MAX_RATE_LIMITED_DELAY)
    return Deferred(delay, "retry_after", headers, exc)


def dead(message: str, exc: BaseException | None = None) -> Failed:
    """An outcome that sends the job to the dead-letter store."""
    tb = None if exc is None else format_traceback(exc)
    return Failed(Failure(_clip(message), tb, retry_in=None), exc)


def describe(exc: BaseException) -> str:
    """``Type: message``, even when the exception's ``__str__`` itself fails."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break the worker
        text = f"<unprintable {type(exc).__name__}>"
    return _clip(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def format_traceback(exc: BaseException) -> str | None:
    """The traceback as text, from the task's own frames (the whole one after them:
    `conveyor.tracebacks`), clipped to a safe size."""
    try:
        return _clip(task_view(exc))
    except Exception:  # noqa: BLE001
        return None


def _clip(text: str) -> str:
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return text[: MAX_ERROR_CHARS - 40] + f"... [{len(text) - MAX_ERROR_CHARS + 40} chars cut]"
