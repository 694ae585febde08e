"""FastAPI and Starlette: the store opened with the app, an enqueue dependency, the dashboard.

```python
from typing import Annotated
from fastapi import Depends, FastAPI
from conveyor.contrib.fastapi import Enqueuer, lifespan, mount_dashboard
from shop.jobs import app as jobs, send_receipt

api = FastAPI(lifespan=lifespan(jobs))
mount_dashboard(api, jobs, "/admin/jobs", authorize=lambda request: "user" in request.session)

@api.post("/orders/{order_id}/receipt")
async def receipt(order_id: int, enqueue: Annotated[Enqueuer, Depends(Enqueuer)]) -> dict:
    job = await enqueue(send_receipt, order_id)
    return {"job": job.id}
```

* `lifespan` opens the app's store when the server starts (a wrong URL or an unreachable
  store stops the start-up, with the reason) and closes it at shutdown; it can wrap the
  project's own lifespan.
* `Enqueuer` is a dependency: ``await enqueue(task, *args, **kwargs)`` stores a job whose
  correlation id is the request's ``X-Request-ID`` (or ``X-Correlation-ID``) when it has
  one, so the request's log lines and the job's share it. Tests replace it with
  ``api.dependency_overrides``.
* `mount_dashboard` mounts the dashboard behind the project's own login: ``authorize``
  (sync or async) gets each request and returns ``True``, ``False`` (403) or a `Response`
  such as a redirect to the login page (see `conveyor.dashboard.create_dashboard`).

Plain Starlette apps use `lifespan` and `mount_dashboard` the same way. Needs the
``fastapi`` extra (or ``dashboard`` for Starlette alone).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

try:
    from starlette.requests import Request
    from starlette.routing import Mount
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "conveyor.contrib.fastapi needs FastAPI or Starlette: pip install 'conveyor[fastapi]'"
    ) from exc

from conveyor.errors import ConfigError
from conveyor.middleware import correlation_scope
from conveyor.task import BoundTask, Task

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from conveyor.app import Conveyor
    from conveyor.dashboard.app import Authorize
    from conveyor.handle import JobHandle

P = ParamSpec("P")
R = TypeVar("R")
A = TypeVar("A")

#: The request headers whose value becomes the jobs' correlation id, first found wins.
REQUEST_ID_HEADERS = ("x-request-id", "x-correlation-id")
#: Where `lifespan` puts the app in the lifespan state (``request.state.conveyor``).
STATE_KEY = "conveyor"

Lifespan = Callable[[A], contextlib.AbstractAsyncContextManager[Mapping[str, Any] | None]]


def lifespan(
    conveyor: Conveyor, inner: Lifespan[A] | None = None
) -> Callable[[A], contextlib.AbstractAsyncContextManager[dict[str, Any]]]:
    """A lifespan for ``FastAPI(lifespan=...)`` or ``Starlette(lifespan=...)``.

    It opens ``conveyor``'s store before the server takes requests and closes it after the
    last one; ``inner``, the project's own lifespan, runs inside (its state is kept). The
    state gets ``conveyor``, so ``request.state.conveyor`` is the app (`Enqueuer` uses it).
    """

    @contextlib.asynccontextmanager
    async def run(host: A) -> AsyncIterator[dict[str, Any]]:
        await conveyor.open()
        try:
            state: dict[str, Any] = {STATE_KEY: conveyor}
            if inner is None:
                yield state
                return
            async with inner(host) as own:
                yield {**state, **(own or {})}
        finally:
            await conveyor.aclose()

    return run


class Enqueuer:
    """A FastAPI dependency that enqueues jobs for the request: ``Depends(Enqueuer)``.

    ``await enqueue(task, *args, **kwargs)`` is ``task.enqueue_async(*args, **kwargs)``
    with the request's id (``X-Request-ID`` or ``X-Correlation-ID``) as the jobs'
    correlation id; ``task`` may carry options (``send.options(delay=60)``). The task must
    belong to the app `lifespan` opened, when there is one.
    """

    def __init__(self, request: Request) -> None:
        self.request = request
        self.conveyor: Conveyor | None = getattr(request.state, STATE_KEY, None)
        self.request_id = next(
            (v for h in REQUEST_ID_HEADERS if (v := request.headers.get(h, "").strip())), None
        )

    async def __call__(
        self, task: Task[P, R] | BoundTask[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> JobHandle[R]:
        """Store a job for ``task(*args, **kwargs)`` and return its handle."""
        bare = task.task if isinstance(task, BoundTask) else task
        if not isinstance(bare, Task):
            raise ConfigError(
                f"enqueue takes a task (or task.options(...)), not {type(task).__name__}"
            )
        if self.conveyor is not None and bare.app is not self.conveyor:
            raise ConfigError(
                f"task {bare.name!r} belongs to another Conveyor app than the one this "
                "app's lifespan opened: enqueue it through its own app"
            )
        if self.request_id is None:
            return await task.enqueue_async(*args, **kwargs)
        with correlation_scope(self.request_id[:200]):
            return await task.enqueue_async(*args, **kwargs)


def mount_dashboard(
    host: Starlette,
    conveyor: Conveyor,
    path: str = "/conveyor",
    *,
    authorize: Authorize | None = None,
    **options: Any,
) -> Starlette:
    """Mount the dashboard of ``conveyor`` at ``path`` of ``host`` and return the dashboard.

    ``authorize(request)`` puts it behind ``host``'s own login (see the module's
    docstring); ``options`` are `create_dashboard`'s (``read_only``, ``token``, ...).
    Without ``authorize``, a token or a password, the dashboard answers only to loopback
    names.
    """
    from conveyor.dashboard import create_dashboard

    if not path.startswith("/") or path == "/":
        raise ConfigError(
            f"mount_dashboard path={path!r}: give the path it lives under, e.g. '/admin/jobs'"
        )
    dashboard = create_dashboard(conveyor, authorize=authorize, **options)
    host.router.routes.append(Mount(path.rstrip("/"), app=dashboard, name="conveyor"))
    # A mounted app gets no lifespan of its own: the host's closes the dashboard's handle.
    outer = host.router.lifespan_context

    @contextlib.asynccontextmanager
    async def closing(app: Any) -> AsyncIterator[Any]:
        try:
            async with outer(app) as state:
                yield state
        finally:
            await dashboard.state.dashboard.close()

    host.router.lifespan_context = closing
    return dashboard
