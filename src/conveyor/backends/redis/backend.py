"""`RedisBackend`: the core job-store verbs on Redis, one Lua script per state change.

The capabilities are parts beside it (`RedisLimits`, `RedisScheduling`, `RedisAdmin`,
`RedisTelemetry`, `RedisProgress`), each holding the handle's one `RedisConnection`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
from redis.exceptions import ResponseError

from conveyor.attempts import LOST_ERROR
from conveyor.backends.base import Backend, RecoveryReport, poison_pill_reason, release_claimed
from conveyor.backends.batching import Batcher
from conveyor.backends.redis import codec, producing
from conveyor.backends.redis.admin import SWEEP_BATCH, RedisAdmin, not_a_hash
from conveyor.backends.redis.claiming import ClaimRequest, claim_now, claim_waiting
from conveyor.backends.redis.connection import RedisConnection, translated
from conveyor.backends.redis.keys import Keys, Target
from conveyor.backends.redis.limits import RedisLimits
from conveyor.backends.redis.progress import RedisProgress
from conveyor.backends.redis.scheduling import RedisScheduling
from conveyor.backends.redis.telemetry import RedisTelemetry
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.job import EnqueueResult, Failure, JobRecord, Lease, NewJob, Routing, State

#: Async enqueues of fewer jobs than this are coalesced with concurrent ones.
COALESCE_BELOW = 100

_POISON = poison_pill_reason(1234567).split("1234567")
#: The error and traceback members of every lost attempt's log entry (recover.lua).
_LOST = codec.log_texts(LOST_ERROR, None)


class RedisBackend(Backend):
    """Jobs in Redis (`redis://`, `rediss://`); see the package docstring for the layout."""

    def __init__(self, url: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.url = url
        self.clock = clock
        self._conn = RedisConnection(url, clock)
        super().__init__(
            limits=RedisLimits(self._conn),
            scheduling=RedisScheduling(self._conn),
            admin=RedisAdmin(self._conn),
            telemetry=RedisTelemetry(self._conn),
            progress=RedisProgress(self._conn),
        )
        # Acknowledgements and small enqueues made while one is in flight share the next
        # script call.
        self._acks: Batcher[tuple[Lease, bytes | Failure | None], bool] = Batcher(
            self._ack_batch, name="conveyor-redis-acks"
        )
        self._enqueues: Batcher[Sequence[NewJob], list[EnqueueResult]] = Batcher(
            self._enqueue_batch, name="conveyor-redis-enqueues"
        )

    @property
    def connection(self) -> RedisConnection:
        """This handle's connection, which its parts share (tools and tests run scripts
        through it)."""
        return self._conn

    @property
    def target(self) -> Target:
        """The parsed URL: what redis-py connects to, and the store's prefix."""
        return self._conn.target

    @property
    def keys(self) -> Keys:
        """The store's key names."""
        return self._conn.keys

    def clone(self) -> RedisBackend:
        """A new handle (its own connections and wake list) on the same store and clock."""
        return RedisBackend(self.url, clock=self.clock)

    def __repr__(self) -> str:
        return f"RedisBackend({self.target.display!r})"

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        """Connect, load the scripts, and warn about settings that can lose jobs."""
        await self._conn.open()

    async def close(self) -> None:
        """Send what is queued for the next script call, then close this handle's
        connections; safe to call twice."""
        await self._acks.close()
        await self._enqueues.close()
        await self._conn.close()

    # -- producing -----------------------------------------------------------------------
    async def enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """Store jobs in order: one script call per `producing.ENQUEUE_CHUNK` jobs, one
        round trip.

        Small calls made while another enqueue is in flight are coalesced: they go out
        together in the next script call, each caller getting its own results (and an
        error reaching every caller of that call)."""
        if not jobs:
            return []
        if len(jobs) >= COALESCE_BELOW:
            return await producing.enqueue(self._conn, jobs)
        return await self._enqueues.submit(jobs)

    async def _enqueue_batch(self, calls: list[Sequence[NewJob]]) -> list[list[EnqueueResult]]:
        if len(calls) == 1:
            return [await producing.enqueue(self._conn, calls[0])]
        results = await producing.enqueue(self._conn, [job for jobs in calls for job in jobs])
        out = []
        i = 0
        for jobs in calls:
            out.append(results[i : i + len(jobs)])
            i += len(jobs)
        return out

    def enqueue_sync(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """`enqueue` for code without an event loop (thread-safe)."""
        return producing.enqueue_sync(self._conn, jobs)

    # -- working -------------------------------------------------------------------------
    async def claim(
        self,
        worker_id: str,
        routing: Routing,
        limit: int,
        lease_seconds: float,
        *,
        wait: float = 0.0,
    ) -> list[JobRecord]:
        """Lease up to ``limit`` matching jobs in run order, waiting up to ``wait`` seconds
        for some: parked on this handle's wake list, with the claim pipelined behind the
        pop (see `conveyor.backends.redis.claiming`)."""
        request = ClaimRequest(worker_id, routing, limit, lease_seconds)
        if wait <= 0 or limit <= 0:
            return await claim_now(self._conn, request)
        return await self._claim_waiting(request, wait)

    async def _claim_waiting(self, request: ClaimRequest, wait: float) -> list[JobRecord]:
        """`claiming.claim_waiting` in a task of its own, so a cancelled caller can end the
        pop at once and release what the claim in flight leased before it goes on.

        The caller only ever awaits the shield, never redis-py itself: redis-py can swallow
        a cancel that lands while it waits for a reply (the command still completes), and
        here none can land there, so a cancelled caller always stops and never holds jobs.
        """
        abandoned = asyncio.Event()
        task = asyncio.ensure_future(claim_waiting(self._conn, request, wait, abandoned))
        task.add_done_callback(_retrieve)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            abandoned.set()
            await self._conn.unblock()
            await release_claimed(self, task)
            task.cancel()  # only still running if its reply never came within the grace
            raise

    async def extend(self, leases: Sequence[Lease], lease_seconds: float) -> list[bool]:
        """Push held leases forward; ``False`` for each lost one."""
        if not leases:
            return []
        args: list[Any] = [repr(float(lease_seconds))]
        for lease in leases:
            args += [lease.job_id, lease.token]
        reply = await self._conn.run("extend", [self.keys.leases, self.keys.counters], *args)
        return [r == b"1" for r in reply]

    async def complete(self, lease: Lease, result: bytes | None) -> bool:
        """Mark the job succeeded; acknowledgements made together share one round trip."""
        return await self._acks.submit((lease, result))

    async def fail(self, lease: Lease, failure: Failure) -> bool:
        """Schedule the retry or dead-letter the job, its attempt added to the job's attempt
        log; ``False`` if the lease was lost."""
        return await self._acks.submit((lease, failure))

    async def _ack_batch(self, items: list[tuple[Lease, bytes | Failure | None]]) -> list[bool]:
        """Run queued completions and failures: one script each."""
        k = self.keys
        done: list[Any] = []
        failed: list[Any] = []
        for lease, outcome in items:
            if isinstance(outcome, Failure):
                failed += [
                    lease.job_id,
                    lease.token,
                    outcome.error,
                    "" if outcome.traceback is None else "t" + outcome.traceback,
                    "" if outcome.retry_in is None else repr(float(outcome.retry_in)),
                    codec.log_texts(outcome.error, outcome.traceback),
                ]
            else:
                done += [lease.job_id, lease.token, b"" if outcome is None else b"r" + outcome]
        completed = failures = iter(())
        if done:
            keys = [k.leases, k.unique, k.counts, k.counters, k.done(State.SUCCEEDED)]
            completed = iter(await self._conn.run("complete", keys, *done))
        if failed:
            keys = [k.leases, k.unique, k.counts, k.counters, k.done(State.DEAD), k.scheduled]
            keys += [k.waiters, k.paused]
            failures = iter(await self._conn.run("fail", keys, *failed))
        return [
            next(failures if isinstance(outcome, Failure) else completed) == b"1"
            for _, outcome in items
        ]

    async def release(self, lease: Lease) -> bool:
        """Back to ready at once, attempt returned; ``False`` if the lease was lost."""
        k = self.keys
        [ok] = await self._conn.run(
            "release",
            [k.leases, k.lanes, k.counts, k.counters, k.waiters, k.paused],
            lease.job_id,
            lease.token,
        )
        return bool(ok == b"1")

    async def defer(
        self, lease: Lease, delay: float, headers: dict[str, Any] | None = None
    ) -> bool:
        """Back to scheduled (or ready) without using an attempt; ``False`` if fenced."""
        k = self.keys
        ok = await self._conn.run(
            "defer",
            [k.leases, k.lanes, k.scheduled, k.counts, k.counters, k.waiters, k.paused],
            lease.job_id,
            lease.token,
            repr(float(delay)),
            # Header values were checked when the job was built (JSON types, no NaN).
            b"" if headers is None else b"h" + orjson.dumps(headers),
        )
        return bool(ok == b"1")

    async def recover(self, max_recoveries: int) -> RecoveryReport:
        """Expired leases back to ready, or dead as poison pills, each run kept in its
        job's attempt log as lost; batch by batch."""
        k = self.keys
        keys = [k.leases, k.lanes, k.unique, k.counts, k.counters, k.done(State.DEAD)]
        keys += [k.waiters, k.paused]
        recovered = dead = 0
        while True:
            r, d, more = await self._conn.run(
                "recover", keys, max_recoveries, SWEEP_BATCH, _POISON[0], _POISON[1], _LOST
            )
            recovered, dead = recovered + int(r), dead + int(d)
            if more != b"1":
                return RecoveryReport(recovered, dead)

    # -- reading -------------------------------------------------------------------------
    async def get(self, job_id: str) -> JobRecord | None:
        """One job by id (one HGETALL), or ``None``; a damaged record as a placeholder."""
        key = self.keys.job(job_id)
        client = self._conn.client()
        with translated(self.target):
            try:
                flat = await client.execute_command("HGETALL", key)  # type: ignore[no-untyped-call]
            except ResponseError as exc:
                if "WRONGTYPE" not in str(exc):
                    raise
                return not_a_hash(job_id, await client.type(key))
        return codec.readable(job_id, flat) if flat else None

    def get_sync(self, job_id: str) -> JobRecord | None:
        """`get` for code without an event loop."""
        key = self.keys.job(job_id)
        client = self._conn.sync()
        with translated(self.target):
            try:
                flat = client.execute_command("HGETALL", key)  # type: ignore[no-untyped-call]
            except ResponseError as exc:
                if "WRONGTYPE" not in str(exc):
                    raise
                return not_a_hash(job_id, client.type(key))
        return codec.readable(job_id, flat) if flat else None


def _retrieve(task: asyncio.Future[list[JobRecord]]) -> None:
    """Mark a waiting claim's outcome as read: an abandoned one may fail with nobody to
    await it (its caller already went on with the cancellation)."""
    if not task.cancelled():
        task.exception()
