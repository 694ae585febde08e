"""The admin capability on Redis: listing and counting jobs, the oldest wait per queue,
retrying dead jobs, cancelling, deleting, purging, pausing queues, and the servers' health
and topology."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from conveyor.backends.capabilities import TOPOLOGY_PREFIX, Admin, ServerInfo
from conveyor.backends.redis import codec
from conveyor.backends.redis import topology as topo
from conveyor.backends.redis.connection import RedisConnection, translated
from conveyor.backends.redis.persistence import persistence_problems
from conveyor.backends.redis.quarantine import log, show
from conveyor.backends.unreadable import UnreadableRecord, placeholder
from conveyor.job import FINAL_STATES, JobQuery, JobRecord, Priority, QueueStats, State

#: Finished jobs deleted, or expired leases swept, per script call.
SWEEP_BATCH = 1000


class RedisAdmin(Admin):
    """`Admin` on one handle's connection: scripts for what changes jobs, plain reads of
    the indexes for the rest."""

    def __init__(self, conn: RedisConnection) -> None:
        self._conn = conn

    async def query(self, query: JobQuery) -> list[JobRecord]:
        """Jobs newest first, filtered in Redis."""
        if query.states is not None and not query.states:
            return []
        states = "" if query.states is None else ",".join(s.value for s in query.states)
        k = self._conn.keys
        reply: Any = b"more"
        while reply == b"more":  # a store made before the index buckets: moved in parts
            reply = await self._conn.run(
                "query",
                [k.buckets, k.all, k.seq],
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
        counts, due = await self._conn.run(
            "stats", [self._conn.keys.counts, self._conn.keys.scheduled]
        )
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
        with translated(self._conn.target):
            values = await self._conn.client().hmget(self._conn.keys.counters, names)
        out: dict[str, int] = {}
        for name, value in zip(names, values, strict=True):
            try:
                out[name] = int(value or 0)
            except ValueError:
                log.error("counter %s holds %r, not an integer: shown as 0", name, value)
                out[name] = 0
        return out

    async def oldest_ready(self) -> dict[str, float]:
        """Per queue with ready (or due) jobs: the oldest one's ``run_at``."""
        flat = await self._conn.run("oldest", [self._conn.keys.lanes, self._conn.keys.scheduled])
        return {show(q): float(t) for q, t in zip(flat[::2], flat[1::2], strict=True)}

    async def diagnostics(self) -> list[str]:
        """Server settings that can lose jobs, and where there is more than one server (or
        the URL names a replica) the ``topology:`` line and what it cannot keep
        (``conveyor status`` shows them)."""
        target = self._conn.target
        with translated(target):
            problems = await persistence_problems(self._conn.client())
        found = await self.topology()
        lines = topo.warnings(target, found)
        if found.kind == "sentinel" or found.replicas or found.role == "slave":
            lines.insert(0, TOPOLOGY_PREFIX + found.describe())
        return lines + problems

    async def topology(self) -> topo.Topology:
        """The primary, its replicas and (behind Sentinel) the service and sentinels:
        addresses only, no secrets."""
        with translated(self._conn.target):
            return await topo.read(self._conn.client(), self._conn.target)

    async def servers(self) -> list[ServerInfo]:
        """The primary (or the replica the URL names), its replicas and the sentinels, as
        `topology` finds them."""
        return (await self.topology()).servers()

    # -- repairing -----------------------------------------------------------------------
    async def retry_dead(self, job_ids: Sequence[str] | None = None) -> int:
        """Dead jobs back to ready with fresh attempts, oldest enqueue first."""
        k = self._conn.keys
        keys = [k.done(State.DEAD), k.lanes, k.unique, k.counts, k.waiters, k.paused]
        if job_ids is None:
            return int(await self._conn.run("retry_dead", keys, "1"))
        if not job_ids:
            return 0
        return int(await self._conn.run("retry_dead", keys, "0", *job_ids))

    async def cancel(self, job_id: str) -> bool:
        """Cancel an active job; ``False`` if it was final or unknown."""
        k = self._conn.keys
        keys = [k.scheduled, k.lanes, k.leases, k.unique, k.counts, k.done(State.CANCELLED)]
        return bool(await self._conn.run("cancel", keys, job_id))

    async def purge(self, states: Sequence[State], older_than: float | None = None) -> int:
        """Delete finished jobs, oldest first, `SWEEP_BATCH` per script call."""
        final = [s for s in dict.fromkeys(states) if s in FINAL_STATES]
        if not final:
            return 0
        keys = [
            self._conn.keys.all,
            self._conn.keys.counts,
            *(self._conn.keys.done(s) for s in final),
        ]
        age = "" if older_than is None else repr(float(older_than))
        total = 0
        while True:
            deleted, more = await self._conn.run(
                "purge", keys, age, SWEEP_BATCH, *(s.value for s in final)
            )
            total += int(deleted)
            if more != b"1":
                return total

    async def delete(self, job_ids: Sequence[str]) -> int:
        """Delete the final-state jobs among ``job_ids``, `SWEEP_BATCH` per script call."""
        k = self._conn.keys
        keys = [
            k.all,
            k.counts,
            k.unique,
            k.done(State.SUCCEEDED),
            k.done(State.DEAD),
            k.done(State.CANCELLED),
        ]
        ids = list(dict.fromkeys(job_ids))
        total = 0
        for i in range(0, len(ids), SWEEP_BATCH):
            total += int(await self._conn.run("delete", keys, *ids[i : i + SWEEP_BATCH]))
        return total

    # -- pause and resume ----------------------------------------------------------------
    def _pause_keys(self) -> list[str]:
        return [self._conn.keys.paused, self._conn.keys.lanes, self._conn.keys.waiters]

    async def pause_queue(self, queue: str) -> None:
        """Stop claims of ``queue``'s jobs (enqueueing goes on); idempotent."""
        await self._conn.run("pause", self._pause_keys(), "pause", queue)

    async def resume_queue(self, queue: str) -> None:
        """Let ``queue``'s jobs be claimed again, waking parked workers for them."""
        await self._conn.run("pause", self._pause_keys(), "resume", queue)

    async def paused_queues(self) -> list[str]:
        """The paused queues, sorted (one SMEMBERS)."""
        with translated(self._conn.target):
            names = await self._conn.client().smembers(self._conn.keys.paused)
        return sorted(n.decode() if isinstance(n, bytes) else n for n in names)


def not_a_hash(job_id: str, kind: bytes | str) -> JobRecord:
    """A placeholder for a job key holding another type than a hash (``kind``)."""
    detail = f"the key holds a {show(kind)}, not a hash; it is kept as it is"
    return placeholder(job_id, {}, UnreadableRecord(job_id, "(key)", detail))
