"""`MemoryProgress`: the latest progress report of a running job, kept on its record."""

from __future__ import annotations

from conveyor.attempts import JobProgress
from conveyor.backends.capabilities import Progress
from conveyor.backends.memory.state import MemoryPart
from conveyor.job import Lease, State


class MemoryProgress(MemoryPart, Progress):
    """`Progress` for the memory store."""

    async def report_progress(
        self, lease: Lease, done: float, total: float | None, note: str | None
    ) -> bool:
        with self._s.lock:
            job = self._s.jobs.get(lease.job_id)
            if job is None or job.state is not State.RUNNING or job.lease_token != lease.token:
                return False
            job.progress = JobProgress(
                float(done),
                None if total is None else float(total),
                note,
                job.attempts,
                self.clock.now(),
            )
            return True
