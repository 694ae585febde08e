"""How an app registers tasks: ``@app.task``'s options checked once, the task named, a
second task of the same name refused, and a registered task found again by name.

`Conveyor.task` and `Conveyor.get_task` are thin doors onto this module (as
`conveyor.app.enqueueing` is for enqueueing); the app keeps the registry itself,
``app.tasks``, so workers and the CLI read it without going through here.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, overload

from conveyor.errors import ConfigError, UnknownTask
from conveyor.job import Priority
from conveyor.limits import Limits
from conveyor.option_checks import check_retries, check_seconds
from conveyor.retry import Backoff, resolve_backoff
from conveyor.task import Task, UniqueKey, default_name

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.middleware import JobMiddleware

P = ParamSpec("P")
R = TypeVar("R")


class TaskDecorator(Protocol):
    """What ``@app.task(...)`` with options returns: it registers the function it decorates."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Task[P, R]: ...


def task_decorator(
    app: Conveyor,
    fn: Callable[..., Any] | None,
    *,
    name: str | None,
    queue: str,
    priority: str | int | Priority,
    retries: int | None,
    backoff: Backoff | str | float | Sequence[float] | None,
    timeout: float | None,
    unique_key: UniqueKey | None,
    middleware: Sequence[JobMiddleware],
    rate_limit: str | None,
    rate_limit_key: Callable[..., Any] | None,
    max_concurrency: int | None,
    concurrency_key: Callable[..., Any] | None,
    max_rate_limited: int | None,
) -> Any:
    """`Conveyor.task`: ``fn`` registered on ``app``, or (without ``fn``) a decorator that
    registers the function it is given.

    Every option is checked here, before any function is decorated, so a wrong option is
    an error at the ``@app.task(...)`` line; a name already registered is a `ConfigError`.
    """
    if retries is not None:
        check_retries(retries)
    if timeout is not None:
        check_seconds("timeout", timeout, positive=True)
    prio = Priority.parse(priority)
    policy = resolve_backoff(backoff)
    limits = Limits.build(
        rate_limit=rate_limit,
        rate_limit_key=rate_limit_key,
        max_concurrency=max_concurrency,
        concurrency_key=concurrency_key,
        max_rate_limited=max_rate_limited,
    )

    def register(func: Callable[..., Any]) -> Task[Any, Any]:
        # Tasks defined inside functions (factories, tests) drop the "<locals>" part,
        # which is not a valid name; a clash is then reported as a duplicate.
        task_name = name or default_name(func)
        if task_name in app.tasks:
            raise ConfigError(
                f"a task named {task_name!r} is already registered; give one of them "
                "another name= option"
            )
        task: Task[Any, Any] = Task(
            app,
            func,
            name=task_name,
            queue=queue,
            priority=prio,
            retries=retries,
            backoff=policy,
            timeout=timeout,
            unique_key=unique_key,
            limits=limits,
            middleware=middleware,
        )
        app.tasks[task_name] = task
        return task

    return register if fn is None else register(fn)


def registered_task(app: Conveyor, name: str) -> Task[Any, Any]:
    """`Conveyor.get_task`: the task registered on ``app`` as ``name``, or `UnknownTask`
    listing the names that are registered."""
    try:
        return app.tasks[name]
    except KeyError:
        known = ", ".join(sorted(app.tasks)) or "none"
        raise UnknownTask(
            f"no task named {name!r} is registered on this app (registered: {known})"
        ) from None
