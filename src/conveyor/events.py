"""Events and listeners, Laravel style: one event, any number of listeners.

```python
class UserRegistered(Event):
    user_id: int
    email: str

@app.listener(UserRegistered)                    # runs at once, in the dispatching process
def audit(event: UserRegistered) -> None: ...

@app.listener(UserRegistered, queued=True, queue="events", retries=5)
async def send_welcome(event: UserRegistered) -> None: ...   # one job per dispatch

app.dispatch(UserRegistered(user_id=1, email="a@example.com"))
```

A queued listener is a task named ``listener:<module>.<function>`` whose one argument is the
event as JSON; the worker rebuilds the event (validated) before calling the listener. A
failing listener is logged at error and never stops the others.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from pydantic import BaseModel, ConfigDict

from conveyor.errors import ConfigError, ListenersFailed

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.handle import JobHandle
    from conveyor.job import Priority
    from conveyor.middleware import JobMiddleware
    from conveyor.retry import Backoff
    from conveyor.task import Task, UniqueKey

log = logging.getLogger("conveyor.events")


class Event(BaseModel):
    """Base class of events: declare typed fields, as on a pydantic model.

    Fields are validated when the event is made and again when a worker rebuilds it for a
    queued listener, so they must survive a JSON round trip. Events are immutable.
    """

    model_config = ConfigDict(frozen=True)


E = TypeVar("E", bound=Event)


class ListenerOptions(TypedDict, total=False):
    """Task options of a queued listener's job (see `Conveyor.task`)."""

    priority: str | int | Priority
    retries: int
    backoff: Backoff | str | float | Sequence[float]
    timeout: float
    unique_key: UniqueKey
    middleware: Sequence[JobMiddleware]
    rate_limit: str
    rate_limit_key: Callable[..., Any]
    max_concurrency: int
    concurrency_key: Callable[..., Any]
    max_rate_limited: int


@dataclass(slots=True, frozen=True)
class Listener:
    """One registered listener: the event class it listens to, and its job if queued."""

    event: type[Event]
    fn: Callable[[Any], Any]
    name: str
    task: Task[Any, Any] | None = None


@dataclass(slots=True)
class ListenerFailure:
    """A listener that raised (or a queued listener whose job could not be stored)."""

    listener: str
    error: Exception


@dataclass(slots=True)
class DispatchResult:
    """What one dispatch did: listeners run, listeners failed, jobs enqueued."""

    event: Event
    ran: list[str] = field(default_factory=list)
    failed: list[ListenerFailure] = field(default_factory=list)
    queued: list[JobHandle[Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every listener ran (or was enqueued) without an error."""
        return not self.failed

    def raise_on_failure(self) -> None:
        """Raise `ListenersFailed` naming every listener that failed, if any did."""
        if self.failed:
            names = ", ".join(
                f"{f.listener} ({type(f.error).__name__}: {f.error})" for f in self.failed
            )
            raise ListenersFailed(
                f"{len(self.failed)} listener(s) of {type(self.event).__name__} failed: {names}",
                [f.error for f in self.failed],
            )


def listener_decorator(
    app: Conveyor,
    event: type[E],
    queued: bool,
    name: str | None,
    queue: str,
    task_options: ListenerOptions,
) -> Callable[[Callable[[E], Any]], Callable[[E], Any]]:
    """What `Conveyor.listener` returns: registers the function it decorates, unchanged."""
    if not queued and task_options:
        raise ConfigError(
            f"task options {sorted(task_options)} only apply to queued listeners; "
            "add queued=True or drop them"
        )

    def register(fn: Callable[[E], Any]) -> Callable[[E], Any]:
        label = name or listener_name(fn)
        task = None
        if queued:
            task = queued_task(app, event, fn, label, {"queue": queue, **task_options})
        app.listeners.setdefault(event, []).append(Listener(event, fn, label, task))
        return fn

    return register


def listener_name(fn: Callable[..., Any]) -> str:
    """``listener:<module>.<qualname>``, the default name of a queued listener's task."""
    return f"listener:{fn.__module__}.{fn.__qualname__.replace('.<locals>', '')}"


def queued_task(
    app: Conveyor,
    event: type[Event],
    fn: Callable[[Any], Any],
    name: str,
    options: dict[str, Any],
) -> Task[Any, Any]:
    """Register the task that runs ``fn`` for a queued listener."""
    if inspect.iscoroutinefunction(fn):

        async def run_async(event_json: dict[str, Any]) -> None:
            await fn(event.model_validate(event_json))

        runner: Callable[..., Any] = run_async
    else:

        def run_sync(event_json: dict[str, Any]) -> None:
            fn(event.model_validate(event_json))

        runner = run_sync
    runner.__doc__ = fn.__doc__
    task: Task[Any, Any] = app.task(name=name, **options)(runner)
    return task


def listeners_for(app: Conveyor, event: Event) -> list[Listener]:
    """The listeners of ``event``'s class and of its Event base classes, in that order."""
    found: list[Listener] = []
    for cls in type(event).__mro__:
        if isinstance(cls, type) and issubclass(cls, Event):
            found.extend(app.listeners.get(cls, ()))
    return found


def dispatch(app: Conveyor, event: Event, *, raise_errors: bool = False) -> DispatchResult:
    """Run ``event``'s listeners now and enqueue its queued ones (from sync code)."""
    result = DispatchResult(event)
    everyone = listeners_for(app, event)
    for item in everyone:
        if item.task is not None:
            continue
        try:
            _call_sync(item.fn, event)
            result.ran.append(item.name)
        except Exception as exc:  # noqa: BLE001 - one listener never stops the others
            _failed(result, item.name, exc)
    queued = [item for item in everyone if item.task is not None]
    if queued:
        try:
            result.queued = app.enqueue_many(_specs(queued, event))
        except Exception as exc:  # noqa: BLE001 - reported in the result, never raised here
            _enqueue_failed(result, queued, exc)
    return _finish(result, raise_errors)


async def dispatch_async(
    app: Conveyor, event: Event, *, raise_errors: bool = False
) -> DispatchResult:
    """`dispatch` for async code: async listeners are awaited, sync ones run in a thread."""
    result = DispatchResult(event)
    everyone = listeners_for(app, event)
    for item in everyone:
        if item.task is not None:
            continue
        try:
            if inspect.iscoroutinefunction(item.fn):
                await item.fn(event)
            else:
                await asyncio.to_thread(item.fn, event)
            result.ran.append(item.name)
        except Exception as exc:  # noqa: BLE001 - one listener never stops the others
            _failed(result, item.name, exc)
    queued = [item for item in everyone if item.task is not None]
    if queued:
        try:
            result.queued = await app.enqueue_many_async(_specs(queued, event))
        except Exception as exc:  # noqa: BLE001
            _enqueue_failed(result, queued, exc)
    return _finish(result, raise_errors)


def _specs(queued: Sequence[Listener], event: Event) -> list[Any]:
    payload = event.model_dump(mode="json")
    return [item.task.call(payload) for item in queued if item.task is not None]


def _failed(result: DispatchResult, name: str, exc: Exception) -> None:
    result.failed.append(ListenerFailure(name, exc))
    log.error(
        "%s (for %s) failed: %s: %s",
        name,
        type(result.event).__name__,
        type(exc).__name__,
        exc,
        exc_info=exc,
    )


def _enqueue_failed(result: DispatchResult, queued: Sequence[Listener], exc: Exception) -> None:
    for item in queued:
        _failed(result, item.name, exc)


def _finish(result: DispatchResult, raise_errors: bool) -> DispatchResult:
    if raise_errors:
        result.raise_on_failure()
    return result


def _call_sync(fn: Callable[[Any], Any], event: Event) -> None:
    """Call a listener from sync code; an async one runs to completion on a private loop."""
    if not inspect.iscoroutinefunction(fn):
        fn(event)
        return

    async def main() -> None:
        await fn(event)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(main())
        return
    # Called from sync code inside a running loop: that loop is busy running us, so the
    # listener gets its own loop in a helper thread (with the caller's contextvars).
    context = contextvars.copy_context()
    with ThreadPoolExecutor(1, thread_name_prefix="conveyor-listener") as pool:
        pool.submit(context.run, asyncio.run, main()).result()
