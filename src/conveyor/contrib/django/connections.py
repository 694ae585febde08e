"""Django's database connections closed around each job, as Django's request cycle does.

A worker is a long-lived process: a connection past ``CONN_MAX_AGE``, or one broken by a
database restart or a failed query, would otherwise be handed to the next job on the same
thread and fail it. `close_db_connections` calls `django.db.close_old_connections` before
and after every job, in the thread where the job's queries run:

* a plain ``def`` task runs in one of the worker's threads, and Django's connections belong
  to a thread: the task's function is wrapped so the calls happen in that thread;
* an ``async def`` task reaches the ORM through ``sync_to_async`` (Django's async ORM
  does), whose thread-sensitive calls share one thread: the calls are made there.

Inside an open ``atomic`` block Django would drop the connection, so eager mode (jobs run
inline, for example inside a test's transaction) is left alone. `ConveyorConfig.ready`
adds this middleware to the project's app.
"""

from __future__ import annotations

import copy
import functools
import weakref
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from conveyor.middleware import ExecutionContext, JobNext
from conveyor.task import Task

#: Each task's copy whose function closes connections around itself, made once.
_closing: weakref.WeakKeyDictionary[Task[Any, Any], Task[Any, Any]] = weakref.WeakKeyDictionary()


async def close_db_connections(ctx: ExecutionContext, call_next: JobNext) -> Any:
    """Job middleware: stale or broken Django connections closed before and after the job."""
    if ctx.app.eager:
        return await call_next()
    if not ctx.task.is_async:
        # The executor calls ``ctx.task`` when the onion reaches it: the copy runs instead.
        ctx.task = closing_task(ctx.task)
        return await call_next()
    await _close_async()
    try:
        return await call_next()
    finally:
        await _close_async()


_close_async = sync_to_async(close_old_connections, thread_sensitive=True)


def closing_task(task: Task[Any, Any]) -> Task[Any, Any]:
    """``task`` with a function that closes old connections before and after itself."""
    found = _closing.get(task)
    if found is None:
        found = copy.copy(task)
        found.fn = _around(task.fn)
        _closing[task] = found
    return found


def _around(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return run
