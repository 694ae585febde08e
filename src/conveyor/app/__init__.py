"""The app: one explicit object holding tasks, settings and the backend.

Nothing happens at import: the backend is created on first use and opened on first async use.
How the app registers tasks is in `registering`; how it builds and stores jobs (and runs
them inline in eager mode) in `enqueueing`; enqueueing by name in `by_name`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, Unpack, overload

from conveyor.app.by_name import name_only_task
from conveyor.app.enqueueing import (
    EagerRunner,
    build_job,
    enqueue_calls,
    enqueue_calls_async,
    set_default_eager,
)
from conveyor.app.registering import TaskDecorator, registered_task, task_decorator
from conveyor.backends import create_backend
from conveyor.backends.opening import SharedOpen
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.errors import ConfigError
from conveyor.handle import JobHandle
from conveyor.job import NewJob, Priority
from conveyor.middleware import EnqueueMiddleware, JobMetrics, JobMiddleware, MiddlewareStack
from conveyor.redaction import redact_url
from conveyor.retry import Backoff
from conveyor.schedule import (
    CronSchedule,
    IntervalSchedule,
    Missed,
    ScheduleDecorator,
    ScheduleEntry,
    TaskOptions,
    schedule_decorator,
)
from conveyor.settings import Settings, load_settings
from conveyor.settings.checks import url_problem
from conveyor.task import JobSpec, Task, UniqueKey

if TYPE_CHECKING:
    from conveyor.backends.base import Backend
    from conveyor.events import DispatchResult, Event, Listener, ListenerOptions

__all__ = ["Conveyor", "EagerRunner", "set_default_eager"]

P = ParamSpec("P")
R = TypeVar("R")
E = TypeVar("E", bound="Event")


class Conveyor:
    """A Conveyor app: register tasks on it, enqueue through it, run workers for it.

    ``url`` picks the backend (``CONVEYOR_URL``, default ``sqlite:///conveyor.db``); given
    here it wins over ``CONVEYOR_URL`` and ``QUEUE_CONNECTION``. A URL that cannot name a
    backend (port 99999) does not stop the app from being built (at import): it is a
    `ConfigError` when the store is first used.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        settings: Settings | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if settings is None:
            # A URL given here wins over every other source: what CONVEYOR_URL or
            # QUEUE_CONNECTION would have chosen is neither read nor warned about.
            try:
                settings = load_settings(conveyor_url=url)
            except ConfigError:
                # Building the app (often at import) never fails on its URL: one that
                # cannot name a store is refused, in one line, when the store is first used.
                settings = load_settings().model_copy(update={"conveyor_url": url})
        elif url is not None:
            settings = settings.model_copy(update={"conveyor_url": url})
        self.settings = settings
        self.url = self.settings.conveyor_url
        self.clock = clock
        self.tasks: dict[str, Task[Any, Any]] = {}
        #: Cron and periodic entries, by name (`cron`, `periodic`); a `Scheduler` fires them.
        self.schedules: dict[str, ScheduleEntry] = {}
        #: Middleware, outermost first, built-ins included (see `conveyor.middleware`).
        self.middlewares = MiddlewareStack()
        #: Run counts and durations per task, queue and outcome (the metrics middleware's).
        self.job_metrics = JobMetrics()
        #: Event listeners by event class (`listener`).
        self.listeners: dict[type[Event], list[Listener]] = {}
        #: Tasks known here only by name (`task_by_name`), made once each.
        self._name_only: dict[str, Task[..., Any]] = {}
        self._backend: Backend | None = None
        self._opened = False
        #: The open in progress, shared by every caller that arrives meanwhile.
        self._opening = SharedOpen()
        self.eager = False
        #: What runs jobs while `eager` is true (`EagerRunner`; `conveyor.testing` sets it).
        self.eager_runner: EagerRunner | None = None

    def __repr__(self) -> str:
        # Error trackers record locals with repr(): never the URL's password.
        return f"<Conveyor {redact_url(self.url)} tasks={len(self.tasks)}>"

    # -- tasks (`conveyor.app.registering`) ---------------------------------------------
    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> Task[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R]) -> Task[P, R]: ...
    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: str | int | Priority = "normal",
        retries: int | None = None,
        backoff: Backoff | str | float | Sequence[float] | None = None,
        timeout: float | None = None,
        unique_key: UniqueKey | None = None,
        middleware: Sequence[JobMiddleware] = (),
        rate_limit: str | None = None,
        rate_limit_key: Callable[..., Any] | None = None,
        max_concurrency: int | None = None,
        concurrency_key: Callable[..., Any] | None = None,
        max_rate_limited: int | None = None,
    ) -> TaskDecorator: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: str | int | Priority = "normal",
        retries: int | None = None,
        backoff: Backoff | str | float | Sequence[float] | None = None,
        timeout: float | None = None,
        unique_key: UniqueKey | None = None,
        middleware: Sequence[JobMiddleware] = (),
        rate_limit: str | None = None,
        rate_limit_key: Callable[..., Any] | None = None,
        max_concurrency: int | None = None,
        concurrency_key: Callable[..., Any] | None = None,
        max_rate_limited: int | None = None,
    ) -> Any:
        """Register a function (``async def`` or plain ``def``) as a task.

        Options: ``name`` (default ``module.function``), ``queue``, ``priority`` (``high``,
        ``normal``, ``low``, or a number: larger runs first), ``retries`` (default
        ``MAX_RETRIES``), ``backoff``, ``timeout`` in seconds (default ``JOB_TIMEOUT``),
        ``unique_key`` (a string, or a function of the task's arguments returning one),
        ``middleware`` (job middleware for this task only, run inside the app's).

        Limits, enforced by every worker on the store (docs/limits.md): ``rate_limit``
        (``"45/s"``, ``"100/m"``, ``"1000/h"``) with an optional ``rate_limit_key`` (a
        function of the arguments: one window per key); ``max_concurrency`` with an optional
        ``concurrency_key``; ``max_rate_limited``, how often a job may raise `RateLimited`
        without using an attempt (default 25).
        """
        return task_decorator(
            self,
            fn,
            name=name,
            queue=queue,
            priority=priority,
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            unique_key=unique_key,
            middleware=middleware,
            rate_limit=rate_limit,
            rate_limit_key=rate_limit_key,
            max_concurrency=max_concurrency,
            concurrency_key=concurrency_key,
            max_rate_limited=max_rate_limited,
        )

    # -- schedules -----------------------------------------------------------------------
    def cron(
        self,
        expression: str,
        *,
        timezone: str = "UTC",
        seconds: bool = False,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        missed: Missed = "run_once",
        name: str | None = None,
        **task_options: Unpack[TaskOptions],
    ) -> ScheduleDecorator:
        """Enqueue a task on a cron schedule: ``@app.cron("*/5 * * * *")``.

        Decorates a function (registering it as a task, with the ``queue``, ``priority``,
        ``retries`` and ``timeout`` given) or an existing `Task`. Each tick is enqueued once,
        however many schedulers run, with ``args`` and ``kwargs``. ``timezone`` is an IANA
        name (DST as croniter handles it: see ``docs/scheduling.md``); ``missed`` is what
        happens to ticks missed while no scheduler ran: ``skip``, ``run_once`` (default) or
        ``run_each``. ``name`` (default: the task's) names the entry. Five fields; with
        ``seconds=True``, six, the seconds first (the expression is checked here: a date that
        never comes or a value out of range is a `ConfigError` naming the field).
        """
        return schedule_decorator(
            self,
            CronSchedule(expression, timezone, seconds=seconds),
            name=name,
            args=args,
            kwargs=kwargs,
            missed=missed,
            task_options=dict(task_options),
        )

    def periodic(
        self,
        *,
        every: float | timedelta,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        missed: Missed = "run_once",
        name: str | None = None,
        **task_options: Unpack[TaskOptions],
    ) -> ScheduleDecorator:
        """Enqueue a task every ``every`` seconds (or `timedelta`, at least 1 s); see `cron`.

        Ticks fall on multiples of ``every`` since the Unix epoch, so schedulers agree on them.
        """
        return schedule_decorator(
            self,
            IntervalSchedule(every),
            name=name,
            args=args,
            kwargs=kwargs,
            missed=missed,
            task_options=dict(task_options),
        )

    # -- middleware and events ---------------------------------------------------------
    def middleware(self, mw: JobMiddleware) -> JobMiddleware:
        """Add job middleware (``async def mw(ctx, call_next)``) inside those already added.

        Usable as a decorator. See `conveyor.middleware` for the order.
        """
        self.middlewares.job.append(mw)
        return mw

    use = middleware

    def enqueue_middleware(self, mw: EnqueueMiddleware) -> EnqueueMiddleware:
        """Add enqueue middleware: ``ctx.jobs`` may be changed before ``call_next()``."""
        self.middlewares.enqueue.append(mw)
        return mw

    def listener(
        self,
        event: type[E],
        *,
        queued: bool = False,
        name: str | None = None,
        queue: str = "events",
        **task_options: Unpack[ListenerOptions],
    ) -> Callable[[Callable[[E], Any]], Callable[[E], Any]]:
        """Register a listener of ``event`` (and of its subclasses); see `conveyor.events`.

        With ``queued=True`` every dispatch enqueues one job for it, on ``queue``, with
        any other `task` option (``retries``, ``timeout``, ``priority``, ...).
        """
        from conveyor.events import listener_decorator

        return listener_decorator(self, event, queued, name, queue, task_options)

    def dispatch(self, event: Event, *, raise_errors: bool = False) -> DispatchResult:
        """Run ``event``'s listeners now and enqueue its queued ones (from sync code).

        A failing listener is logged and never stops the others; the result lists them,
        and ``raise_errors=True`` raises `ListenersFailed` once every listener had its turn.
        """
        from conveyor.events import dispatch

        return dispatch(self, event, raise_errors=raise_errors)

    async def dispatch_async(self, event: Event, *, raise_errors: bool = False) -> DispatchResult:
        """`dispatch` for async code."""
        from conveyor.events import dispatch_async

        return await dispatch_async(self, event, raise_errors=raise_errors)

    def get_task(self, name: str) -> Task[Any, Any]:
        """The task registered under ``name`` (`UnknownTask` lists those that are)."""
        return registered_task(self, name)

    # -- backend -------------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        """The backend for this app's URL, created on first use (a URL that cannot name a
        store is a one-line `ConfigError` here)."""
        if self._backend is None:
            problem = url_problem(self.url)
            if problem is not None:
                raise ConfigError(f"{problem} ({redact_url(self.url)})")
            self._backend = create_backend(self.url, clock=self.clock)
        return self._backend

    async def open(self) -> Backend:
        """Open the backend once (connect, check the schema) and return it.

        Callers arriving while an open is under way (a hundred coroutines enqueueing at
        start-up) wait for that one; a failed open is tried again by the next call, and a
        caller cancelled while waiting does not cancel the open for the others.
        """
        backend = self.backend
        if not self._opened:
            await self._opening.run(backend.open)
            self._opened = True
        return backend

    async def aclose(self) -> None:
        """Close the backend's connections."""
        if self._backend is not None:
            await self._backend.close()
        self._backend = None
        self._opened = False
        self._opening.reset()

    def close(self) -> None:
        """`aclose` for sync code."""
        if self._backend is not None:
            asyncio.run(self.aclose())

    # -- enqueue (`conveyor.app.enqueueing`) ---------------------------------------------
    def build(self, spec: JobSpec) -> NewJob:
        """Turn a call into the job a backend stores; checks every argument."""
        return build_job(self, spec)

    def enqueue_many(
        self, specs: Sequence[JobSpec], *, connection: object | None = None
    ) -> list[JobHandle[Any]]:
        """Store many jobs in one round trip (from sync code).

        With ``connection`` (or calls made with ``options(connection=...)``) the jobs are
        stored inside that open database transaction and exist only if it commits. In
        eager mode jobs run at once and the connection is not used.
        """
        return enqueue_calls(self, specs, connection)

    async def enqueue_many_async(
        self, specs: Sequence[JobSpec], *, connection: object | None = None
    ) -> list[JobHandle[Any]]:
        """Store many jobs in one round trip (from async code); see `enqueue_many`."""
        return await enqueue_calls_async(self, specs, connection)

    def job(self, job_id: str) -> JobHandle[Any]:
        """A handle on an existing job, by id."""
        return JobHandle(self, job_id)

    # -- enqueue by name (`conveyor.app.by_name`) ----------------------------------------
    def task_by_name(self, name: str) -> Task[..., Any]:
        """The task called ``name``, for producers that do not import the task's code.

        A task registered on this app is returned as is. Any other valid name gives a
        name-only task: its jobs are stored under ``name``, on the ``default`` queue with
        the app's retries and timeout unless ``.options(queue=..., ...)`` says otherwise
        (this process cannot know the options the task declares where it is defined), and a
        worker whose app has that task runs them. Its arguments are not checked at enqueue:
        without the function there is no signature to check them against, so a mistake
        shows up as a failed job. Calling a name-only task directly raises `UnknownTask`.

        ``app.task_by_name("billing.charge").options(queue="billing", delay=60).enqueue(7)``
        """
        return name_only_task(self, name, self._name_only)

    def enqueue(self, task: str, /, *args: Any, **kwargs: Any) -> JobHandle[Any]:
        """Enqueue a job for the task called ``task`` (from sync code), by name.

        ``app.enqueue("billing.charge", 42, currency="EUR")`` stores the job under that
        name, for a worker that has the task; see `task_by_name` for what is and is not
        checked here, and for per-call options (queue, delay, priority, ...).
        """
        return self.task_by_name(task).enqueue(*args, **kwargs)

    async def enqueue_async(self, task: str, /, *args: Any, **kwargs: Any) -> JobHandle[Any]:
        """`enqueue` for async code."""
        return await self.task_by_name(task).enqueue_async(*args, **kwargs)
