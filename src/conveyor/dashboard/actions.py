"""The dashboard's actions on the store, shared by the form POSTs and the JSON API.

Each returns an `Outcome`: how many jobs (or queues) changed and one sentence saying so,
shown to the user as it is. All of them go through the store's `Admin` capability.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from conveyor.errors import JobNotFound
from conveyor.job import State

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.backends.base import Backend


@dataclass(slots=True, frozen=True)
class Outcome:
    """What an action did."""

    action: str
    count: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The API's answer."""
        return asdict(self)


def _jobs(n: int) -> str:
    return f"{n} job" if n == 1 else f"{n} jobs"


async def retry(backend: Backend, ids: Sequence[str] | None) -> Outcome:
    """Move the given dead jobs (every dead job for ``None``) back to ready."""
    n = await backend.admin.retry_dead(None if ids is None else list(ids))
    if n == 0:
        return Outcome("retry", 0, "nothing retried: no matching job is dead (any more)")
    return Outcome("retry", n, f"retried {_jobs(n)}: back to ready with fresh attempts")


async def delete(backend: Backend, ids: Sequence[str] | None) -> Outcome:
    """Delete the given finished jobs; ``None`` deletes every dead job."""
    if ids is None:
        n = await backend.admin.purge([State.DEAD])
        return Outcome("delete", n, f"deleted {_jobs(n)} from the dead-letter store")
    n = await backend.admin.delete(list(ids))
    if n == 0:
        return Outcome(
            "delete",
            0,
            "nothing deleted: only finished jobs (succeeded, dead, cancelled) "
            "can be deleted; cancel a waiting or running job first",
        )
    return Outcome("delete", n, f"deleted {_jobs(n)}")


async def cancel(backend: Backend, job_id: str) -> Outcome:
    """Cancel a scheduled, ready or running job."""
    if await backend.admin.cancel(job_id):
        return Outcome("cancel", 1, f"cancelled job {job_id}")
    # The backend answers False for a missing job too: say which it was (404, not "done").
    if await backend.get(job_id) is None:
        raise JobNotFound(f"job {job_id} does not exist (or was pruned after retention)")
    return Outcome("cancel", 0, f"job {job_id} was already finished: nothing to cancel")


async def pause(backend: Backend, queue: str) -> Outcome:
    """Stop workers from taking the queue's jobs (enqueueing goes on)."""
    await backend.admin.pause_queue(queue)
    return Outcome("pause", 1, f"paused queue {queue}: workers take none of its jobs")


async def run_due(app: Conveyor, backend: Backend) -> Outcome:
    """Enqueue the schedule entries due now, once: ``conveyor schedule run`` from the
    dashboard (the event-worker seed's ``POST /workers/run``). Safe beside running
    schedulers: each due tick is enqueued once in all."""
    from conveyor.backends.capabilities import Scheduling
    from conveyor.scheduler import Scheduler

    if not app.schedules:
        return Outcome("run_due", 0, "nothing to run: the app has no schedule entries")
    if not backend.supports(Scheduling):
        return Outcome(
            "run_due", 0, "nothing run: this store records no cron ticks, so none can fire"
        )
    fired = await Scheduler(app).fire_due(backend=backend)
    if not fired:
        return Outcome("run_due", 0, "nothing due: every entry's latest tick has run")
    names = ", ".join(sorted({f.entry for f in fired}))
    return Outcome("run_due", len(fired), f"enqueued {_jobs(len(fired))} due now: {names}")


async def resume(backend: Backend, queue: str) -> Outcome:
    """Let workers take the queue's jobs again."""
    await backend.admin.resume_queue(queue)
    return Outcome("resume", 1, f"resumed queue {queue}")
