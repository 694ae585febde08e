"""How an app turns calls into stored jobs: building them, storing them, or running them inline.

`Conveyor.build`, `Conveyor.enqueue_many` and `Conveyor.enqueue_many_async` are thin doors
onto this module. `build_job` checks a call and makes the `NewJob` a store keeps; `store` and
`store_async` hand a batch to the app's backend (or to the caller's database transaction, or
to the eager runner while ``app.eager`` is true) and return handles on the jobs;
`enqueue_calls` and `enqueue_calls_async` do both, inside the app's enqueue middleware.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from conveyor import composition
from conveyor.backends.base import transactions_for
from conveyor.errors import ConfigError
from conveyor.handle import JobHandle
from conveyor.job import NewJob, Priority, new_job_ids
from conveyor.middleware import EnqueueContext, run_chain, run_chain_sync
from conveyor.option_checks import check_unique_key, run_time
from conveyor.serialization import check_headers, encode_payload
from conveyor.task import CallOptions, JobSpec, Task

if TYPE_CHECKING:
    from conveyor.app import Conveyor

T = TypeVar("T")


class EagerRunner(Protocol):
    """What runs jobs inline, as they are enqueued, while ``app.eager`` is true.

    `conveyor.testing` provides it (`eager`, `make_test_app`, `use_memory_backend` install
    it as ``app.eager_runner``): it runs jobs through the worker's executor, which sits above
    the app, so the app only calls it and never imports it.
    """

    def run(self, app: Conveyor, jobs: Sequence[NewJob]) -> list[JobHandle[Any]]:
        """Store ``jobs`` and run each new one once, now (from sync code)."""
        ...

    async def run_async(self, app: Conveyor, jobs: Sequence[NewJob]) -> list[JobHandle[Any]]:
        """`run` for async code: the jobs run on the caller's event loop."""
        ...


def set_default_eager(factory: Callable[[], EagerRunner] | None) -> None:
    """Set what makes an eager runner for apps that were given none (the package root
    sets `conveyor.testing`'s: `conveyor.composition`)."""
    composition.default_eager = factory


def build_job(app: Conveyor, spec: JobSpec) -> NewJob:
    """Turn a call into the job a backend stores; checks every argument.

    Raises `BadArguments` (a `TypeError`) when the arguments do not fit the task's function,
    `ConfigError` for a task named after ``__main__`` that a worker could not find, and
    `SerializationError` for a value that cannot be stored.
    """
    return build_jobs(app, [spec])[0]


def build_jobs(app: Conveyor, specs: Sequence[JobSpec]) -> list[NewJob]:
    """`build_job` for each call, in order: what only depends on the task and the call's
    options (the store's defaults, the headers' check, the run time) is worked out once per
    run of calls that share them (a `Task.enqueue_many` batch is one run), the ids are made
    in one go, and each call's own arguments are checked and encoded one by one. The first
    call that cannot become a job raises, so none of the batch is stored."""
    ids = new_job_ids(len(specs))
    settings = app.settings
    max_payload = settings.max_payload_bytes
    importable = not (app.eager or app.url.startswith("memory:"))
    jobs: list[NewJob] = []
    shared: _Shared | None = None
    for spec, job_id in zip(specs, ids, strict=True):
        task, opts = spec.task, spec.options
        new_run = shared is None or not (
            task is shared.task and (opts is shared.options or opts == shared.options)
        )
        if new_run and task.app is not app:
            raise ConfigError(f"task {task.name!r} belongs to another Conveyor app")
        # Before anything calls a function of the arguments (unique_key), and before the
        # job exists: a call that does not fit fails here, at the caller's line.
        task.check_arguments(spec.args, spec.kwargs)
        if new_run:
            shared = _shared(app, spec, importable)
        assert shared is not None  # set by the first call
        unique = shared.unique
        if unique is None and callable(task.unique_key):
            unique = check_unique_key(task.unique_key(*spec.args, **spec.kwargs))
        jobs.append(
            NewJob(
                task=shared.task_name,
                queue=shared.queue,
                priority=shared.priority,
                payload=encode_payload(spec.args, spec.kwargs, max_bytes=max_payload),
                max_retries=shared.max_retries,
                timeout=shared.timeout,
                run_at=shared.run_at,
                headers=dict(opts.headers) if opts.headers else {},
                unique_key=unique,
                id=job_id,
                delay=shared.delay,
            )
        )
    return jobs


@dataclass(slots=True)  # not frozen: made for every enqueue() call, and never changed
class _Shared:
    """What a run of calls of one task with the same options have in common."""

    task: Task[Any, Any]
    options: CallOptions
    task_name: str
    queue: str
    priority: Priority
    max_retries: int
    timeout: float
    run_at: float | None
    delay: float | None
    #: The unique key every call gets (given or fixed), else None.
    unique: str | None


def _shared(app: Conveyor, spec: JobSpec, importable: bool) -> _Shared:
    task, opts = spec.task, spec.options
    if importable:
        # Only a worker in this very process could run it: eager mode, or a memory store.
        task.check_importable()
    check_headers(opts.headers)
    unique = opts.unique_key
    if unique is None and isinstance(task.unique_key, str):
        unique = check_unique_key(task.unique_key)
    settings = app.settings
    return _Shared(
        task=task,
        options=opts,
        task_name=task.name,
        queue=opts.queue or task.queue,
        priority=opts.priority if opts.priority is not None else task.priority,
        max_retries=_first(opts.retries, task.retries, settings.max_retries),
        timeout=_first(opts.timeout, task.timeout, settings.job_timeout),
        run_at=_run_at(app, opts.delay, opts.run_at),
        delay=None if opts.delay is None else float(opts.delay),
        unique=unique,
    )


def _run_at(app: Conveyor, delay: float | None, run_at: datetime | float | None) -> float | None:
    # Checks both; but a delay= travels as a delay, which the store adds to its own now
    # (a store on server time must not get this host's clock). Only an explicit run_at
    # is an absolute time, by definition.
    at = run_time(app.clock, delay, run_at)
    return None if delay is not None else at


#: What defers the jobs of calls made with ``options(on_commit=True)`` until the caller's
#: database transaction commits; a framework integration that knows the transactions sets it
#: (`set_commit_hook`; ``conveyor.contrib.django`` does when Django starts). It is called with
#: the app, the built jobs and ``store(connection)``, and either calls ``store`` now with a
#: connection inside the transaction (the job is written in it) or, once the transaction
#: commits, with ``None`` (the app's own store), and never after a rollback.
CommitHook = Callable[["Conveyor", Sequence[NewJob], Callable[[object | None], None]], None]
_commit_hook: CommitHook | None = None


def set_commit_hook(hook: CommitHook | None) -> CommitHook | None:
    """Install ``hook`` for ``options(on_commit=True)`` (``None`` removes it); returns the
    one it replaces."""
    global _commit_hook
    previous, _commit_hook = _commit_hook, hook
    return previous


def _defer_to_commit(
    app: Conveyor, specs: Sequence[JobSpec], jobs: list[NewJob], connection: object | None
) -> list[JobHandle[Any]] | None:
    """Hand calls made with ``on_commit=True`` to the commit hook; ``None`` for others."""
    wanted = [s.options.on_commit for s in specs]
    if not any(wanted):
        return None
    if not all(wanted):
        raise ConfigError(
            "this batch mixes calls made with options(on_commit=True) and calls without: "
            "enqueue them separately"
        )
    if connection is not None or any(s.options.connection is not None for s in specs):
        raise ConfigError(
            "give either options(connection=...) or options(on_commit=True), not both: the "
            "first enqueues inside the transaction you pass, the second lets the integration "
            "find it"
        )
    if _commit_hook is None:
        raise ConfigError(
            "options(on_commit=True) needs an integration that knows your transactions: "
            "add 'conveyor.contrib.django' to INSTALLED_APPS, or pass your open database "
            "connection with options(connection=...)"
        )

    def later(connection: object | None) -> None:
        _store_now(app, specs, jobs, connection)

    _commit_hook(app, jobs, later)
    return [JobHandle(app, job.id) for job in jobs]


def enqueue_calls(
    app: Conveyor, specs: Sequence[JobSpec], connection: object | None
) -> list[JobHandle[Any]]:
    """`Conveyor.enqueue_many`: a job built for each call, then stored (`store`) through
    the app's enqueue middleware, which may change ``ctx.jobs`` before they are."""
    ctx = EnqueueContext(app, specs, build_jobs(app, specs), is_async=False)
    return run_chain_sync(
        app.middlewares.enqueue, ctx, lambda: store(app, specs, ctx.jobs, connection)
    )


async def enqueue_calls_async(
    app: Conveyor, specs: Sequence[JobSpec], connection: object | None
) -> list[JobHandle[Any]]:
    """`enqueue_calls` for async code (`Conveyor.enqueue_many_async`)."""
    ctx = EnqueueContext(app, specs, build_jobs(app, specs), is_async=True)
    return await run_chain(
        app.middlewares.enqueue, ctx, lambda: store_async(app, specs, ctx.jobs, connection)
    )


def store(
    app: Conveyor, specs: Sequence[JobSpec], jobs: list[NewJob], connection: object | None
) -> list[JobHandle[Any]]:
    """Store ``jobs`` (built from ``specs``) from sync code; handles on them, in order.

    Calls made with ``options(on_commit=True)`` go to the commit hook instead
    (`set_commit_hook`): their handles name jobs that exist once the transaction commits.
    """
    deferred = _defer_to_commit(app, specs, jobs, connection)
    if deferred is not None:
        return deferred
    return _store_now(app, specs, jobs, connection)


def _store_now(
    app: Conveyor, specs: Sequence[JobSpec], jobs: Sequence[NewJob], connection: object | None
) -> list[JobHandle[Any]]:
    if app.eager:
        return eager_runner(app).run(app, jobs)
    conn = _connection(specs, connection)
    if conn is not None:
        results = transactions_for(app.backend, conn).enqueue_in(conn, jobs)
    else:
        results = app.backend.enqueue_sync(jobs)
    return [JobHandle(app, r.id, existing=r.existing) for r in results]


async def store_async(
    app: Conveyor, specs: Sequence[JobSpec], jobs: list[NewJob], connection: object | None
) -> list[JobHandle[Any]]:
    """`store` for async code (calls made with ``on_commit=True`` are handed to the commit
    hook, as `store` does: transactions that run on-commit callbacks are sync)."""
    deferred = _defer_to_commit(app, specs, jobs, connection)
    if deferred is not None:
        return deferred
    if app.eager:
        # Awaited, so async tasks run on the caller's loop, as a direct call would.
        return await eager_runner(app).run_async(app, jobs)
    conn = _connection(specs, connection)
    if conn is not None:
        # The caller's connection does the work: no need to open the backend's own.
        results = await transactions_for(app.backend, conn).enqueue_in_async(conn, jobs)
    else:
        backend = await app.open()
        results = await backend.enqueue(jobs)
    return [JobHandle(app, r.id, existing=r.existing) for r in results]


def eager_runner(app: Conveyor) -> EagerRunner:
    """The app's eager runner, made by the default factory on first use."""
    if app.eager_runner is None:
        factory = composition.default_eager
        if factory is None:
            raise ConfigError(
                "app.eager is true but this app has no eager runner: eager mode comes "
                "from conveyor.testing. Use `with eager(app):`, "
                "make_test_app(eager=True), or `with use_memory_backend(app):`"
            )
        app.eager_runner = cast("EagerRunner", factory())
    return app.eager_runner


def _connection(specs: Sequence[JobSpec], given: object | None) -> object | None:
    """The one connection a batch is enqueued in: ``given``, else the calls' own."""
    if given is None and len(specs) == 1:
        return specs[0].options.connection  # one call: nothing to reconcile
    named = {id(s.options.connection): s.options.connection for s in specs}
    named.pop(id(None), None)
    if given is not None:
        named[id(given)] = given
    if len(named) > 1:
        raise ConfigError(
            "these calls name different connections= to enqueue in; one batch is stored in "
            "one transaction, so enqueue each connection's calls separately"
        )
    return next(iter(named.values()), None)


def _first(*values: T | None) -> T:
    for value in values:
        if value is not None:
            return value
    raise AssertionError("no default")  # pragma: no cover
