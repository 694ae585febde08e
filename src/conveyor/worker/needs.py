"""What the worker needs from its store, checked once at start, before any claim.

The core protocol is enough to run jobs. A task with ``rate_limit`` or ``max_concurrency``
needs the store's `Limits`: without it the worker refuses to start with one line naming
the store and the task (running the task unlimited would break its promise). Without
`Telemetry` the worker runs but writes no registry heartbeat and no history; without
`Admin` it runs but purges no finished jobs (``RESULT_TTL`` / ``DEAD_TTL``); without
`Progress` (SQS) the jobs' ``current_job().progress`` reports are checked and dropped. Each
of those is said once, at start.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.backends.capabilities import Admin, Limits, Progress, Telemetry

if TYPE_CHECKING:
    from conveyor.backends.base import Backend
    from conveyor.task import Task

log = logging.getLogger("conveyor.worker")


@dataclass(frozen=True, slots=True)
class StoreUse:
    """Which optional parts of its store the worker uses."""

    #: Register in the worker registry, refresh it on every beat, record history.
    telemetry: bool
    #: Purge finished jobs past their retention in the reaper.
    admin: bool
    #: Write the progress jobs report (``current_job().progress``).
    progress: bool = True


def require_limits(backend: Backend, tasks: Iterable[Task[Any, Any]]) -> None:
    """Raise `Unsupported`, naming the task and its option, if a task's limits need the
    store's `Limits` and the store has none (``conveyor run`` checks this before any worker
    starts, so the workers do not each exit in a restart loop)."""
    for task in sorted(tasks, key=lambda t: t.name):
        if task.limits.rate is not None:
            backend.require(Limits, purpose=f"task {task.name!r}'s rate_limit")
        if task.limits.max_concurrency is not None:
            backend.require(Limits, purpose=f"task {task.name!r}'s max_concurrency")


def check_store(backend: Backend, tasks: Iterable[Task[Any, Any]]) -> StoreUse:
    """Raise `Unsupported` if a task's limits need what the store lacks; say what is skipped."""
    require_limits(backend, tasks)
    scheme = backend.url.partition("://")[0] or backend.url
    use = StoreUse(
        telemetry=backend.supports(Telemetry),
        admin=backend.supports(Admin),
        progress=backend.supports(Progress),
    )
    if not use.telemetry:
        log.info(
            "the %s:// store keeps no worker registry or history: `conveyor status` and the "
            "dashboard will not list this worker",
            scheme,
        )
    if not use.admin:
        log.info(
            "the %s:// store cannot purge jobs: this worker deletes no finished jobs past "
            "RESULT_TTL or DEAD_TTL",
            scheme,
        )
    if not use.progress:
        log.info(
            "the %s:// store does not keep job progress: current_job().progress() reports "
            "are checked and dropped",
            scheme,
        )
    return use
