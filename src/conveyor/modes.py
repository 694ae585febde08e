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

``ENABLE_SCHEDULER`` overrides the scheduler column (except for scheduler-only, where
``false`` is an error). A setting a mode does not use is ignored and reported in
`ModePlan.ignored`, so the worker can log it.
"""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.errors import ConfigError
from conveyor.job import Routing
from conveyor.settings import Settings, mode_problem

#: Concurrency of a thin worker unless WORKER_CONCURRENCY is set.
THIN_CONCURRENCY = 5


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


def resolve_mode(settings: Settings) -> ModePlan:
    """The plan for ``settings``; `ConfigError` when the mode lacks what it needs."""
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
    return ModePlan(mode or "default", routing, s.worker_concurrency, scheduler, tuple(ignored))
