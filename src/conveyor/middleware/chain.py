"""The onion: what a middleware sees, and how a list of middleware wraps one call.

Two kinds, one idea (``call_next``), as in starlette:

- **job middleware** wraps the task call in the worker: ``async def mw(ctx, call_next)``
  where ``ctx`` is an `ExecutionContext` and ``await call_next()`` runs the rest of the
  onion and returns the task's result (or raises its exception);
- **enqueue middleware** wraps storing a batch of jobs: ``ctx`` is an `EnqueueContext`
  whose ``jobs`` may still be changed (headers, queue, ...), and ``await call_next()``
  stores them and returns their handles.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.context import JobContext
    from conveyor.handle import JobHandle
    from conveyor.job import JobRecord, NewJob
    from conveyor.task import JobSpec, Task

T = TypeVar("T")
C = TypeVar("C")


@dataclass(slots=True)
class ExecutionContext:
    """One run of one job, as job middleware sees it.

    ``args`` and ``kwargs`` may be replaced before ``call_next()``; ``state`` is a free
    dict for middleware to pass values to each other (or to the task, via `current_job`
    headers, if they choose).
    """

    app: Conveyor
    job: JobRecord
    task: Task[Any, Any]
    args: list[Any]
    kwargs: dict[str, Any]
    context: JobContext
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def attempt(self) -> int:
        """Which run of the job this is, from 1."""
        return self.job.attempts

    @property
    def queue(self) -> str:
        """The queue the job came from."""
        return self.job.queue

    @property
    def headers(self) -> dict[str, Any]:
        """The job's headers (``correlation_id``, tags, ...)."""
        return self.job.headers


@dataclass(slots=True)
class EnqueueContext:
    """One batch of jobs about to be stored, as enqueue middleware sees it.

    ``jobs[i]`` is the `NewJob` built from ``specs[i]``; changing a job (its ``headers``,
    ``queue``, ``priority``, ...) changes what is stored. ``is_async`` tells whether the
    caller used ``enqueue_async``.
    """

    app: Conveyor
    specs: Sequence[JobSpec]
    jobs: list[NewJob]
    is_async: bool


JobNext: TypeAlias = Callable[[], Awaitable[Any]]
JobMiddleware: TypeAlias = Callable[[ExecutionContext, JobNext], Awaitable[Any]]
EnqueueNext: TypeAlias = Callable[[], Awaitable["list[JobHandle[Any]]"]]
EnqueueMiddleware: TypeAlias = Callable[
    [EnqueueContext, EnqueueNext], Awaitable["list[JobHandle[Any]]"]
]


async def run_chain(
    layers: Sequence[Callable[[C, Callable[[], Awaitable[T]]], Awaitable[T]]],
    ctx: C,
    inner: Callable[[], Awaitable[T]],
) -> T:
    """Run ``inner`` wrapped in ``layers``, the first one outermost."""
    # Each ``call_next`` returns the next layer's own awaitable: no extra coroutine per
    # layer, since this runs for every job.
    call_next = inner
    for layer in reversed(layers):
        call_next = _bind(layer, ctx, call_next)
    return await call_next()


def _bind(
    layer: Callable[[C, Callable[[], Awaitable[T]]], Awaitable[T]],
    ctx: C,
    call_next: Callable[[], Awaitable[T]],
) -> Callable[[], Awaitable[T]]:
    return lambda: layer(ctx, call_next)


def run_chain_sync(
    layers: Sequence[Callable[[C, Callable[[], Awaitable[T]]], Awaitable[T]]],
    ctx: C,
    inner: Callable[[], T],
) -> T:
    """`run_chain` from sync code, for a sync ``inner`` (a sync ``enqueue``).

    The onion is driven without an event loop, so a middleware that awaits real I/O here
    gets a clear error instead of a deadlock: such middleware needs ``enqueue_async``.
    """

    async def call_inner() -> T:
        return inner()

    coro = run_chain(layers, ctx, call_inner)
    try:
        coro.send(None)
    except StopIteration as done:
        value: T = done.value
        return value
    coro.close()
    raise ConfigError(
        "an enqueue middleware awaited real I/O during a sync enqueue(); sync enqueues run "
        "middleware without an event loop. Use enqueue_async() there, or keep the "
        "middleware free of awaits other than call_next()"
    )
