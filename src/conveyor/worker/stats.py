"""A worker's numbers, read once into a frozen snapshot (`Worker.stats`).

The metrics line, the Prometheus collector and the worker registry all read the same
snapshot. The registry keeps it as JSON (`WorkerInfo.stats`, read by ``conveyor status``
and the dashboard), so `WorkerStats.as_dict` is the one place its field names become keys.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.worker.worker import Worker


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """One consistent read of a worker's counters, uptime, memory and utilisation."""

    id: str
    host: str
    pid: int
    pool: str | None
    #: The queues it serves (``("*",)``: all of them).
    queues: tuple[str, ...]
    concurrency: int
    running: int
    processed: int
    succeeded: int
    retried: int
    dead: int
    fenced: int
    lost: int
    released: int
    abandoned: int
    loop_stalls: int
    uptime: float
    rss_mb: float
    #: Busy time over available slot time since the worker started (0 to 1).
    utilisation: float
    #: Per task, queue and outcome, from the metrics middleware (`app.job_metrics`).
    tasks: tuple[dict[str, Any], ...]

    @property
    def failed(self) -> int:
        """Runs that failed, retried or dead."""
        return self.retried + self.dead

    @classmethod
    def read(cls, worker: Worker) -> WorkerStats:
        """Read ``worker``'s numbers now; safe from another thread (the heartbeat's)."""
        uptime = time.monotonic() - worker.started_monotonic
        running = worker.running_jobs()
        busy = worker.counts.busy_seconds + sum(time.monotonic() - r.started for r in running)
        c = worker.counts
        return cls(
            id=worker.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            pool=worker.pool,
            queues=tuple(worker.routing.queues or ["*"]),
            concurrency=worker.concurrency,
            running=len(running),
            processed=c.processed,
            succeeded=c.succeeded,
            retried=c.retried,
            dead=c.dead,
            fenced=c.fenced,
            lost=c.lost,
            released=c.released,
            abandoned=c.abandoned,
            loop_stalls=worker.loop_stalls(),
            uptime=round(uptime, 3),
            rss_mb=round(worker.rss_bytes() / 2**20, 1),
            utilisation=round(min(1.0, busy / max(uptime * worker.concurrency, 1e-9)), 4),
            tasks=tuple(worker.app.job_metrics.snapshot()),
        )

    def as_dict(self) -> dict[str, Any]:
        """The JSON the worker registry keeps (`WorkerInfo.stats`), with ``failed`` in it."""
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "pool": self.pool,
            "queues": list(self.queues),
            "concurrency": self.concurrency,
            "running": self.running,
            "processed": self.processed,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "retried": self.retried,
            "dead": self.dead,
            "fenced": self.fenced,
            "lost": self.lost,
            "released": self.released,
            "abandoned": self.abandoned,
            "loop_stalls": self.loop_stalls,
            "uptime": self.uptime,
            "rss_mb": self.rss_mb,
            "utilisation": self.utilisation,
            "tasks": list(self.tasks),
        }
