"""Reads and repairs on Redis: getting and listing jobs, counts, retrying dead jobs,
cancelling, purging."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from redis import Redis
from redis.exceptions import ResponseError

from conveyor.backends.redis import codec
from conveyor.backends.redis.connection import persistence_problems, translated
from conveyor.backends.redis.part import RedisPart
from conveyor.backends.redis.quarantine import log, show
from conveyor.backends.unreadable import UnreadableRecord, placeholder
from conveyor.job import FINAL_STATES, JobQuery, JobRecord, Priority, QueueStats, State

#: Finished jobs deleted, or expired leases swept, per script call.
SWEEP_BATCH = 1000


class RedisAdmin(RedisPart):
    """Mixed into `RedisBackend`: the methods the CLI and the reaper's pruning use."""

    def _sync(self) -> Redis:
        raise NotImplementedError  # provided by RedisBackend

    # -- reading -------------------------------------------------------------------------
    async def get(self, job_id: str) -> JobRecord | None:
        """One job by id (one HGETALL), or ``None``; a damaged record as a placeholder."""
        key = self.keys.job(job_id)
        with translated(self.target):
            try:
                flat = await self._client().execute_command(  # type: ignore[no-untyped-call]
                    "HGETALL", key
                )
            except ResponseError as exc:
                if "WRONGTYPE" not in str(exc):
                    raise
                kind = await self._client().type(key)
                return not_a_hash(job_id, kind)
        return codec.readable(job_id, flat) if flat else None

    def get_sync(self, job_id: str) -> JobRecord | None:
        """`get` for code without an event loop."""
        key = self.keys.job(job_id)
        with translated(self.target):
            try:
                flat = self._sync().execute_command(  # type: ignore[no-untyped-call]
                    "HGETALL", key
                )
            except ResponseError as exc:
                if "WRONGTYPE" not in str(exc):
                    raise
                return not_a_hash(job_id, self._sync().type(key))
        return codec.readable(job_id, flat) if flat else None

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
        out = []
        for raw_id, flat in zip(reply[::2], reply[1::2], strict=True):
            job_id = show(raw_id)
            if isinstance(flat, bytes):  # query.lua's word for a key of another type
                out.append(not_a_hash(job_id, flat))
            elif flat:
                out.append(codec.readable(job_id, flat))
        return out

    async def stats(self) -> list[QueueStats]:
        """Totals per queue and priority by state; due scheduled jobs count as ready."""
        counts, due = await self._run("stats", [self.keys.counts, self.keys.scheduled])
        table: dict[tuple[str, int], dict[State, int]] = defaultdict(dict)
        for field, value in zip(counts[::2], counts[1::2], strict=True):
            try:
                state, digit, name = show(field).split(":", 2)
                table[(name, Priority(int(digit)))][State(state)] = int(value)
            except ValueError as exc:
                # Damage: scripts reset such a total the next time they change it.
                log.error(
                    "skipped the unreadable counts entry %s = %s (%s)",
                    show(field),
                    show(value),
                    exc,
                )
        for prio, queue in zip(due[::2], due[1::2], strict=True):
            row = table[(show(queue), int(prio))]
            if row.get(State.SCHEDULED, 0) > 0:
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
        out: dict[str, int] = {}
        for name, value in zip(names, values, strict=True):
            try:
                out[name] = int(value or 0)
            except ValueError:
                log.error("counter %s holds %r, not an integer: shown as 0", name, value)
                out[name] = 0
        return out

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

    async def purge(self, states: Sequence[State], older_than: float | None = None) -> int:
        """Delete finished jobs, oldest first, `SWEEP_BATCH` per script call."""
        final = [s for s in dict.fromkeys(states) if s in FINAL_STATES]
        if not final:
            return 0
        keys = [self.keys.all, self.keys.counts, *(self.keys.done(s) for s in final)]
        age = "" if older_than is None else repr(float(older_than))
        total = 0
        while True:
            deleted, more = await self._run(
                "purge", keys, age, SWEEP_BATCH, *(s.value for s in final)
            )
            total += int(deleted)
            if more != b"1":
                return total


def not_a_hash(job_id: str, kind: bytes | str) -> JobRecord:
    """A placeholder for a job key holding another type than a hash (``kind``)."""
    detail = f"the key holds a {show(kind)}, not a hash; it is kept as it is"
    return placeholder(job_id, {}, UnreadableRecord(job_id, "(key)", detail))
