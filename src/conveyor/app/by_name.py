"""Enqueue by name: jobs for tasks whose code this process does not import.

A producer (a web app, a script in another repository) may know a task only by its name,
``"billing.charge"``. `name_only_task` gives it a `Task` that stores jobs under that name
through the same path as any task's ``enqueue`` (enqueue middleware, transactional
enqueue, eager mode), without registering anything on the app: a worker of this app must
never believe it can run such a task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.errors import UnknownTask
from conveyor.job import Priority
from conveyor.retry import resolve_backoff
from conveyor.task import Task

if TYPE_CHECKING:
    from conveyor.app import Conveyor


def name_only_task(app: Conveyor, name: str, made: dict[str, Task[..., Any]]) -> Task[..., Any]:
    """The task registered as ``name`` on ``app``, else a name-only task of that name.

    ``made`` holds the name-only tasks already made for ``app`` (the app keeps it, so a
    producer enqueueing by name in a loop builds each one once, and the tasks go with the
    app). A name that is not a valid task name is a `ConfigError` (as for
    ``@app.task(name=)``).
    """
    registered = app.tasks.get(name)
    if registered is not None:
        return registered
    task = made.get(name)
    if task is None:
        task = Task(
            app,
            _not_here(name),
            name=name,
            queue="default",
            priority=Priority.NORMAL,
            retries=None,
            backoff=resolve_backoff(None),
            timeout=None,
            unique_key=None,
        )
        made[name] = task
    return task


def _not_here(name: str) -> Any:
    # The function of a name-only task: `(*args, **kwargs)`, so any call binds (there is
    # nothing to check arguments against), and calling it says where the code is not.
    def not_here(*args: Any, **kwargs: Any) -> Any:
        raise UnknownTask(
            f"task {name!r} is not registered in this process: it was taken by name "
            "(app.enqueue / app.task_by_name), so it can only be enqueued. Import the "
            "module that defines it to call it directly"
        )

    not_here.__qualname__ = f"name_only[{name}]"
    return not_here
