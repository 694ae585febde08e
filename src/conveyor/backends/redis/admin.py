"""Reads and repairs on Redis: getting and listing jobs, counts, retrying dead jobs,
cancelling, purging."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from redis import Redis

from conveyor.backends.redis import codec
from conveyor.backends.redis.connection import persistence_problems, translated
from conveyor.backends.redis.part import RedisPart
from conveyor.job import FINAL_STATES, JobQuery, JobRecord, Priority, QueueStats, State

#: Finished jobs deleted, or expired leases swept, per script call.
SWEEP_BATCH = 1000


class RedisAdmin(RedisPart):
    """Mixed into `RedisBackend`: the methods the CLI and the reaper's pruning use."""

    def _sync(self) -> Redis:
        raise NotImplementedError  # provided by RedisBackend

    # -- reading -------------------------------------------------------------------------
    async def get(self, job_id: str) -> JobRecord | None:
        """One job by id (one HGETALL), or ``None``."""
        with translated(self.target):
            flat = await self._client().execute_command(  # type: ignore[no-untyped-call]
                "HGETALL", self.keys.job(job_id)
            )
        return codec.record(flat) if flat else None

    def get_sync(self, job_id: str) -> JobRecord | None:
        """`get` for code without an event loop."""
        with translated(self.target):
            flat = self._sync().execute_command(  # type: ignore[no-untyped-call]
                "HGETALL", self.keys.job(job_id)
            )
        return codec.record(flat) if flat else None

    async def query(self, query: JobQuery) -> list[JobRecord]:
        """Jobs newest first, filtered in Redis."""
        if query.states is not None and not query.states:
            return []
        states = "" if query.states is None else ",".join(s.value for s in query.states)
        reply = await self._run(
            "query",
            [self.keys.all],
            states,
            "" if query.queue is None else "q" + query.queue,
            "" if query.task is None else "t" + query.task,
            max(0, query.offset),
            max(0, query.limit),
        )
        return [codec.record(flat) for flat in reply]

    async def stats(self) -> list[QueueStats]:
        """Totals per queue and priority by state; due scheduled jobs count as ready."""
        counts, due = await self._run("stats", [self.keys.counts, self.keys.scheduled])
        table: dict[tuple[str, int], dict[State, int]] = defaultdict(dict)
        for field, value in zip(counts[::2], counts[1::2], strict=True):
            state, prio, queue = field.decode().split(":", 2)
            table[(queue, int(prio))][State(state)] = int(value)
        for prio, queue in zip(due[::2], due[1::2], strict=True):
            row = table[(queue.decode(), int(prio))]
            row[State.SCHEDULED] -= 1
            row[State.READY] = row.get(State.READY, 0) + 1
        out = []
        for (queue, prio), row in sorted(table.items()):
            nonzero = {s: n for s, n in row.items() if n > 0}
            if nonzero:
                out.append(QueueStats(queue, Priority(prio), nonzero))
        return out

    async def counters(self) -> dict[str, int]:
        """The fenced / recovered / poisoned totals."""
        names = ["fenced", "recovered", "poisoned"]
        with translated(self.target):
            values = await self._client().hmget(self.keys.counters, names)
        return {n: int(v or 0) for n, v in zip(names, values, strict=True)}

    async def diagnostics(self) -> list[str]:
        """Server settings that can lose jobs (``conveyor status`` shows them)."""
        with translated(self.target):
            return await persistence_problems(self._client())

    # -- repairing -----------------------------------------------------------------------
    async def retry_dead(self, job_ids: Sequence[str] | None = None) -> int:
        """Dead jobs back to ready with fresh attempts, oldest enqueue first."""
        k = self.keys
        keys = [k.done(State.DEAD), k.lanes, k.unique, k.counts, k.waiters, k.paused]
        if job_ids is None:
            return int(await self._run("retry_dead", keys, "1"))
        if not job_ids:
            return 0
        return int(await self._run("retry_dead", keys, "0", *job_ids))

    async def cancel(self, job_id: str) -> bool:
        """Cancel an active job; ``False`` if it was final or unknown."""
        k = self.keys
        keys = [k.scheduled, k.lanes, k.leases, k.unique, k.counts, k.done(State.CANCELLED)]
        return bool(await self._run("cancel", keys, job_id))

    async def purge(self, states: Sequence[State], finished_before: float | None = None) -> int:
        """Delete finished jobs, oldest first, `SWEEP_BATCH` per script call."""
        final = [s for s in dict.fromkeys(states) if s in FINAL_STATES]
        if not final:
            return 0
        keys = [self.keys.all, self.keys.counts, *(self.keys.done(s) for s in final)]
        before = "" if finished_before is None else repr(float(finished_before))
        total = 0
        while True:
            deleted, more = await self._run(
                "purge", keys, before, SWEEP_BATCH, *(s.value for s in final)
            )
            total += int(deleted)
            if more != b"1":
                return total
