"""`MemoryAdmin`: listing, counting, repairing, deleting and pausing jobs.

Pausing only marks the queue in the shared state; the core `claim` skips marked queues,
and resuming wakes sleeping claims so they look again.
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.backends.capabilities import Admin
from conveyor.backends.memory.state import MemoryPart, copy_record
from conveyor.job import (
    ACTIVE_STATES,
    FINAL_STATES,
    JobQuery,
    JobRecord,
    QueueStats,
    State,
)


class MemoryAdmin(MemoryPart, Admin):
    """`Admin` for the memory store."""

    # -- reading -------------------------------------------------------------------------
    async def query(self, query: JobQuery) -> list[JobRecord]:
        with self._s.lock:
            found = [
                j
                for j in self._s.jobs.values()
                if (query.states is None or j.state in query.states)
                and (query.queue is None or j.queue == query.queue)
                and (query.task is None or j.task == query.task)
            ]
            order = self._s.order
            found.sort(key=lambda j: order[j.id], reverse=True)
            # Only the page is copied, and while the lock still keeps it whole.
            return [copy_record(j) for j in found[query.offset : query.offset + query.limit]]

    async def stats(self) -> list[QueueStats]:
        with self._s.lock:
            now = self.clock.now()
            table: dict[tuple[str, int], QueueStats] = {}
            for j in self._s.jobs.values():
                row = table.setdefault((j.queue, j.priority), QueueStats(j.queue, j.priority))
                state = State.READY if j.state is State.SCHEDULED and j.run_at <= now else j.state
                row.counts[state] = row.counts.get(state, 0) + 1
        return [table[k] for k in sorted(table)]

    async def counters(self) -> dict[str, int]:
        with self._s.lock:
            return dict(self._s.counters)

    async def oldest_ready(self) -> dict[str, float]:
        with self._s.lock:
            now = self.clock.now()
            oldest: dict[str, float] = {}
            for j in self._s.jobs.values():
                if j.state is State.READY or (j.state is State.SCHEDULED and j.run_at <= now):
                    oldest[j.queue] = min(oldest.get(j.queue, j.run_at), j.run_at)
            return oldest

    # -- repairing -----------------------------------------------------------------------
    async def retry_dead(self, job_ids: Sequence[str] | None = None) -> int:
        count = 0
        with self._s.lock:
            now = self.clock.now()
            wanted = None if job_ids is None else set(job_ids)
            for job in self._s.jobs.values():
                if job.state is not State.DEAD or (wanted is not None and job.id not in wanted):
                    continue
                if job.unique_key is not None and job.unique_key in self._s.unique:
                    continue  # a newer job holds the key; retrying would run it twice
                self._s.set_state(job, State.READY, now)
                job.attempts = 0
                job.recoveries = 0
                job.run_at = now
                job.finished_at = None
                if job.unique_key is not None:
                    self._s.unique[job.unique_key] = job.id
                count += 1
        if count:
            self._s.wake()
        return count

    async def cancel(self, job_id: str) -> bool:
        with self._s.lock:
            job = self._s.jobs.get(job_id)
            if job is None or job.state not in ACTIVE_STATES:
                return False
            self._s.set_state(job, State.CANCELLED, self.clock.now())
            return True

    async def delete(self, job_ids: Sequence[str]) -> int:
        with self._s.lock:
            doomed = [
                i
                for i in dict.fromkeys(job_ids)
                if i in self._s.jobs and self._s.jobs[i].state in FINAL_STATES
            ]
            for job_id in doomed:
                del self._s.jobs[job_id]
                del self._s.order[job_id]
        return len(doomed)

    async def purge(self, states: Sequence[State], older_than: float | None = None) -> int:
        final = [s for s in states if s in FINAL_STATES]
        with self._s.lock:
            before = None if older_than is None else self.clock.now() - older_than
            doomed = [
                j.id
                for j in self._s.jobs.values()
                if j.state in final and (before is None or (j.finished_at or 0.0) < before)
            ]
            for job_id in doomed:
                del self._s.jobs[job_id]
                del self._s.order[job_id]
        return len(doomed)

    # -- pausing -------------------------------------------------------------------------
    async def pause_queue(self, queue: str) -> None:
        with self._s.lock:
            self._s.paused.add(queue)

    async def resume_queue(self, queue: str) -> None:
        with self._s.lock:
            self._s.paused.discard(queue)
        self._s.wake()

    async def paused_queues(self) -> list[str]:
        with self._s.lock:
            return sorted(self._s.paused)
