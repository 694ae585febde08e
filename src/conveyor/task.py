"""Tasks: registered functions, and the typed ways to enqueue them.

``Task[P, R]`` keeps the decorated function's parameters ``P`` and result ``R``, so
``send_email.enqueue("a@example.com", subject="Hi")`` is checked by mypy or pyright.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from conveyor.errors import ConfigError, SerializationError
from conveyor.job import Priority
from conveyor.limits import NO_LIMITS, Limits
from conveyor.option_checks import (
    check_name,
    check_retries,
    check_run_at,
    check_seconds,
    check_unique_key,
)
from conveyor.retry import Backoff

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.handle import JobHandle
    from conveyor.middleware.chain import JobMiddleware

P = ParamSpec("P")
R = TypeVar("R")

UniqueKey = str | Callable[..., str]


class BadArguments(SerializationError):
    """A call's arguments do not fit the task's function (a `TypeError`, as a direct call).

    Raised where the job is enqueued, so the mistake points at the caller's line instead
    of a job that dies in a worker. A `SerializationError` like a value JSON cannot hold:
    either way, the call cannot become a job a worker can run.
    """


def default_name(fn: Callable[..., Any]) -> str:
    """The name a task gets without ``name=``: ``module.function``.

    Functions defined inside functions (factories, tests) drop the ``<locals>`` part, which
    is not a valid name.
    """
    qualname = getattr(fn, "__qualname__", getattr(fn, "__name__", "task"))
    return f"{getattr(fn, '__module__', None)}.{qualname.replace('.<locals>', '')}"


@dataclass(frozen=True, slots=True)
class CallOptions:
    """Per-call options that override a task's defaults. ``None`` keeps the default."""

    delay: float | None = None
    run_at: datetime | float | None = None
    priority: Priority | None = None
    queue: str | None = None
    unique_key: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    retries: int | None = None
    timeout: float | None = None
    #: The caller's database connection or session to enqueue in (transactional enqueue).
    connection: object | None = field(default=None, compare=False, repr=False)
    #: Store the job only once the caller's transaction commits, through the framework
    #: integration that knows it (`conveyor.app.enqueueing.set_commit_hook`).
    on_commit: bool = False

    def __post_init__(self) -> None:
        if self.delay is not None and self.run_at is not None:
            raise ConfigError("give either delay= or run_at=, not both")
        if self.delay is not None:
            check_seconds("delay", self.delay)
        if self.run_at is not None and not isinstance(self.run_at, datetime):
            check_run_at(self.run_at)
        if self.queue is not None:
            check_name("queue", self.queue)
        if self.unique_key is not None:
            check_unique_key(self.unique_key)
        if self.retries is not None:
            check_retries(self.retries)
        if self.timeout is not None:
            check_seconds("timeout", self.timeout, positive=True)


#: The options of a call made without `Task.options`, shared by the specs `enqueue` builds
#: and never hands out (its ``headers`` dict is only read).
_DEFAULTS = CallOptions()


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One call waiting to be enqueued, e.g. in `Conveyor.enqueue_many`."""

    task: Task[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    options: CallOptions


class Task(Generic[P, R]):
    """A function registered on an app, with its default job options."""

    def __init__(
        self,
        app: Conveyor,
        fn: Callable[P, Any],
        *,
        name: str,
        queue: str,
        priority: Priority,
        retries: int | None,
        backoff: Backoff,
        timeout: float | None,
        unique_key: UniqueKey | None,
        middleware: Iterable[JobMiddleware] = (),
        limits: Limits = NO_LIMITS,
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = check_name("task", name)
        self.queue = check_name("queue", queue)
        self.priority = priority
        self.retries = None if retries is None else check_retries(retries)
        self.backoff = backoff
        self.timeout = None if timeout is None else check_seconds("timeout", timeout, positive=True)
        self.unique_key = (
            unique_key
            if unique_key is None or callable(unique_key)
            else (check_unique_key(unique_key))
        )
        #: Job middleware for this task only, run inside the app's (outermost first).
        self.middleware: tuple[JobMiddleware, ...] = tuple(middleware)
        #: Rate and concurrency limits, enforced by workers before each start.
        self.limits = limits
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = inspect.signature(fn)
        #: How many positional arguments always fit (every parameter plain, no default),
        #: so the worker can skip `Signature.bind` for such calls; -1 when that is unknown.
        self.positional_arity = _positional_arity(self.signature)
        #: Named ``__main__.…`` because it was defined in the script being run, which a
        #: worker never imports under that name (`check_importable`).
        in_main = getattr(fn, "__module__", None) == "__main__"
        self.defined_in_main = in_main and name == default_name(fn)
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", name)
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.queue} priority={self.priority.label}>"

    def check_arguments(self, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> None:
        """Raise `BadArguments` unless ``fn(*args, **kwargs)`` would bind to the function.

        Python's own message says what is wrong; a misspelt keyword gets a suggestion.
        """
        if not kwargs and len(args) == self.positional_arity:
            return  # every parameter plain and given: nothing to check
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise BadArguments(
                f"task {self.name}{_bare(self.signature)} cannot take these arguments: "
                f"{exc}{_suggestion(self.signature, kwargs)}"
            ) from None

    def check_importable(self) -> None:
        """Raise `ConfigError` if a worker could not find this task under its name.

        A task defined in the script being run (``python script.py``) is named
        ``__main__.add``; a worker imports the app's modules, where no such name exists.
        """
        if self.defined_in_main:
            short = self.name.removeprefix("__main__.")
            raise ConfigError(
                f"task {short} is defined in __main__ (the script being run), so it is named "
                f"{self.name!r}, a name no worker can find: a worker imports your modules "
                f"under their own names. Move the task into a module the script imports, "
                f"or give it a stable name: @app.task(name={short!r})"
            )

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Call the function directly, in this process, without a job."""
        return self.fn(*args, **kwargs)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Store a job for this call and return its handle (from sync code)."""
        return self.app.enqueue_many([JobSpec(self, args, kwargs, _DEFAULTS)])[0]

    async def enqueue_async(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Store a job for this call and return its handle (from async code)."""
        handles = await self.app.enqueue_many_async([JobSpec(self, args, kwargs, _DEFAULTS)])
        return handles[0]

    def call(self, *args: P.args, **kwargs: P.kwargs) -> JobSpec:
        """A call to enqueue later, for instance in bulk with `Conveyor.enqueue_many`."""
        return JobSpec(self, args, kwargs, CallOptions())  # the caller's own: it may edit it

    def enqueue_many(self, calls: Iterable[tuple[Any, ...]]) -> list[JobHandle[R]]:
        """Enqueue one job per tuple of positional arguments, in one round trip."""
        specs = [JobSpec(self, tuple(args), {}, _DEFAULTS) for args in calls]
        return self.app.enqueue_many(specs)

    def options(
        self,
        *,
        delay: float | None = None,
        run_at: datetime | float | None = None,
        priority: str | int | Priority | None = None,
        queue: str | None = None,
        unique_key: str | None = None,
        headers: dict[str, Any] | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        connection: object | None = None,
        on_commit: bool = False,
    ) -> BoundTask[P, R]:
        """This task with per-call options: ``task.options(delay=60).enqueue(...)``.

        ``connection`` enqueues inside the caller's open database transaction (PostgreSQL:
        a psycopg connection, or an SQLAlchemy session or connection), so the job exists
        only if that transaction commits. ``on_commit=True`` does the same through a
        framework integration that knows the transaction (Django: docs/django.md): the
        job is stored once it commits (or inside it, when it shares the store's
        database), never after a rollback.
        """
        opts = CallOptions(
            delay=delay,
            run_at=run_at,
            priority=None if priority is None else Priority.parse(priority),
            queue=queue,
            unique_key=unique_key,
            headers=dict(headers or {}),
            retries=retries,
            timeout=timeout,
            connection=connection,
            on_commit=on_commit,
        )
        return BoundTask(self, opts)


def _bare(signature: inspect.Signature) -> str:
    """``(path, width=640)``: the parameters without annotations, which may be quoted text."""
    params = [p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()]
    return str(signature.replace(parameters=params, return_annotation=inspect.Signature.empty))


def _suggestion(signature: inspect.Signature, kwargs: dict[str, Any]) -> str:
    """`` (did you mean 'width'?)`` for a keyword the function does not have, or ``""``."""
    kinds = {p.kind for p in signature.parameters.values()}
    if inspect.Parameter.VAR_KEYWORD in kinds:
        return ""  # any keyword is welcome: none is misspelt
    names = [
        p.name
        for p in signature.parameters.values()
        if p.kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL)
    ]
    for given in kwargs:
        if given not in signature.parameters:
            close = difflib.get_close_matches(given, names, n=1)
            if close:
                return f" (did you mean {close[0]!r}?)"
    return ""


def _positional_arity(signature: inspect.Signature) -> int:
    plain = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = signature.parameters.values()
    if all(p.kind in plain and p.default is inspect.Parameter.empty for p in params):
        return len(signature.parameters)
    return -1


class BoundTask(Generic[P, R]):
    """A task together with per-call options; made by `Task.options`."""

    def __init__(self, task: Task[P, R], options: CallOptions) -> None:
        self.task = task
        self.opts = options

    def options(self, **changes: Any) -> BoundTask[P, R]:
        """More options on top of these."""
        if "priority" in changes and changes["priority"] is not None:
            changes["priority"] = Priority.parse(changes["priority"])
        return BoundTask(self.task, replace(self.opts, **changes))

    def call(self, *args: P.args, **kwargs: P.kwargs) -> JobSpec:
        """A call with these options, to enqueue later."""
        return JobSpec(self.task, args, kwargs, self.opts)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Store the job (from sync code)."""
        return self.task.app.enqueue_many([self.call(*args, **kwargs)])[0]

    async def enqueue_async(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Store the job (from async code)."""
        handles = await self.task.app.enqueue_many_async([self.call(*args, **kwargs)])
        return handles[0]
