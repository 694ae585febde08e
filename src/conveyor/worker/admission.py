"""Admission: whether a claimed job of a limited task may start now (`conveyor.limits`).

Only tasks with ``rate_limit`` or ``max_concurrency`` pass through here; the verdict is a
`Pass` (start, holding a concurrency slot if the task has one), a `Wait` (put the job back
in storage for a while, no attempt used), or a dead `Outcome` when the task's key function
itself is broken.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from conveyor.errors import ConfigError, SerializationError
from conveyor.limits import Pacer, Pass, Wait, gate
from conveyor.serialization import decode_payload
from conveyor.worker.executor import Outcome, dead

if TYPE_CHECKING:
    from conveyor.backends.base import Backend
    from conveyor.job import JobRecord
    from conveyor.task import Task

log = logging.getLogger("conveyor.worker")

#: Seconds a job waits in storage when its limits could not be checked (backend blip).
UNCHECKED_WAIT = 1.0


async def admit(
    backend: Backend, job: JobRecord, task: Task[..., object], slot_ttl: float, pacer: Pacer
) -> Pass | Wait | Outcome:
    """Ask the backend about ``task``'s limits for ``job``; never raises."""
    try:
        args, kwargs = decode_payload(job.payload)
    except SerializationError:
        return Pass()  # the executor dead-letters it, saying why
    try:
        return await gate(backend, job, task.limits, args, kwargs, slot_ttl, pacer)
    except ConfigError as exc:  # the task's key function failed on these arguments
        return dead(f"limit_key_error: {exc}", exc)
    except Exception as exc:  # noqa: BLE001 - a blip: try again soon, nothing is lost
        log.warning("job %s (%s): could not check its limits: %s", job.id, job.task, exc)
        return Wait(UNCHECKED_WAIT, "unchecked")
