"""Worker modes (``WORKER_MODE``): what one ``conveyor worker`` process runs.

`resolve_mode` is a pure function of the settings:

=================  ==========================================  ===========  ==============
mode               jobs it takes                               concurrency  scheduler
=================  ==========================================  ===========  ==============
thin               every queue, priority and task              5 (default)  on
default            WORKER_QUEUES (all), every priority, task   WORKER_...   on
specialized        WORKER_PRIORITIES only (within the queues)  WORKER_...   off
job-specialized    WORKER_JOB_TYPES only (within the queues)   WORKER_...   off
scheduler-only     none: no job slots                          0            on
(unset)            WORKER_QUEUES / _PRIORITIES / _JOB_TYPES    WORKER_...   on
=================  ==========================================  ===========  ==============

WORKER_... is WORKER_CONCURRENCY; unset, it is 10, or `ASYNC_CONCURRENCY` (32) when every
task the worker can run is ``async def`` (`default_concurrency`).

``ENABLE_SCHEDULER`` overrides the scheduler column (except for scheduler-only, where
``false`` is an error). A setting a mode does not use is ignored and reported in
`ModePlan.ignored`, so the worker can log it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConfigError
from conveyor.job import Routing
from conveyor.settings import Settings, mode_problem

if TYPE_CHECKING:
    from conveyor.task import Task

#: Concurrency of a thin worker unless WORKER_CONCURRENCY is set.
THIN_CONCURRENCY = 5
#: Concurrency of a worker whose every task is ``async def``, unless WORKER_CONCURRENCY is
#: set: coroutines waiting on I/O cost no thread, and on Redis more jobs in flight mean
#: fewer, fuller round trips (docs/benchmarks.md: drain and server CPU per job against
#: 10). A worker with any plain ``def`` task keeps the settings' default (10), since each
#: such job holds a thread (and often a database connection).
ASYNC_CONCURRENCY = 32


def all_async(tasks: Iterable[Task[..., Any]], job_types: Sequence[str] | None = None) -> bool:
    """Whether every task a worker can run (those named by ``job_types``, or all) is async.

    False when there is none: nothing is known about the work.
    """
    chosen = [t for t in tasks if job_types is None or t.name in job_types]
    return bool(chosen) and all(t.is_async for t in chosen)


def default_concurrency(settings: Settings, async_only: bool) -> int:
    """WORKER_CONCURRENCY when it is set, else `ASYNC_CONCURRENCY` for a worker whose
    tasks are all async (``async_only``, see `all_async`), else the settings' default."""
    if "worker_concurrency" in settings.model_fields_set or not async_only:
        return settings.worker_concurrency
    return ASYNC_CONCURRENCY


@dataclass(frozen=True, slots=True)
class ModePlan:
    """What a worker process runs: which jobs, how many at once, and the scheduler or not."""

    mode: str
    routing: Routing
    #: Job slots; 0 means no worker at all (scheduler-only).
    concurrency: int
    scheduler: bool
    #: Settings this mode ignores, as ``"WORKER_PRIORITIES (WORKER_MODE=default ...)"``.
    ignored: tuple[str, ...] = ()


def resolve_mode(settings: Settings, *, async_only: bool = False) -> ModePlan:
    """The plan for ``settings``; `ConfigError` when the mode lacks what it needs.

    ``async_only``: every task the worker can run is ``async def`` (`all_async`), which
    raises the default concurrency to `ASYNC_CONCURRENCY` where WORKER_CONCURRENCY is unset.
    """
    problem = mode_problem(settings)
    if problem is not None:
        raise ConfigError(problem)
    s = settings
    mode = s.worker_mode
    explicit_concurrency = "worker_concurrency" in s.model_fields_set
    scheduler_default = mode not in ("specialized", "job-specialized")
    scheduler = scheduler_default if s.enable_scheduler is None else s.enable_scheduler
    queues, priorities, tasks = s.worker_queues, s.worker_priorities, s.worker_job_types
    ignored: list[str] = []

    def ignore(variable: str, value: object, why: str) -> None:
        if value:
            ignored.append(f"{variable} ({why} in WORKER_MODE={mode})")

    if mode == "scheduler-only":
        ignore("WORKER_CONCURRENCY", explicit_concurrency, "no job slots")
        return ModePlan("scheduler-only", Routing(), 0, True, tuple(ignored))
    if mode == "thin":
        ignore("WORKER_QUEUES", queues, "every queue is served")
        ignore("WORKER_QUEUES_ORDERED", s.worker_queues_ordered, "every queue is served")
        ignore("WORKER_PRIORITIES", priorities, "every priority is served")
        ignore("WORKER_JOB_TYPES", tasks, "every task is served")
        concurrency = s.worker_concurrency if explicit_concurrency else THIN_CONCURRENCY
        return ModePlan("thin", Routing(), concurrency, scheduler, tuple(ignored))
    if mode in ("default", "job-specialized"):
        ignore("WORKER_PRIORITIES", priorities, "every priority is served")
        priorities = None
    if mode in ("default", "specialized"):
        ignore("WORKER_JOB_TYPES", tasks, "every task is served")
        tasks = None
    routing = Routing(queues=queues, priorities=priorities, tasks=tasks)
    concurrency = default_concurrency(s, async_only)
    return ModePlan(mode or "default", routing, concurrency, scheduler, tuple(ignored))
