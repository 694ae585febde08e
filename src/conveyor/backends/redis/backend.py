"""`RedisBackend`: the Backend protocol on Redis, one Lua script per state change."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Sequence
from typing import Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import NoScriptError

from conveyor.backends.base import Backend, RecoveryReport, claim_waiting, poison_pill_reason
from conveyor.backends.redis import codec
from conveyor.backends.redis.admin import SWEEP_BATCH, RedisAdmin
from conveyor.backends.redis.batch import Batcher
from conveyor.backends.redis.connection import (
    SOCKET_TIMEOUT,
    async_client,
    check_persistence,
    sync_client,
    translated,
)
from conveyor.backends.redis.keys import Keys, parse_url, routing_json
from conveyor.backends.redis.limits import RedisLimits
from conveyor.backends.redis.operations import RedisOperations
from conveyor.backends.redis.quarantine import RedisQuarantine, worker_infos
from conveyor.backends.redis.scheduling import RedisScheduling
from conveyor.backends.redis.scripts import load_all, run, run_sync, script
from conveyor.clock import SYSTEM_CLOCK, Clock, SystemClock
from conveyor.job import (
    EnqueueResult,
    Failure,
    JobRecord,
    Lease,
    NewJob,
    Routing,
    State,
    WorkerInfo,
)

#: Jobs per enqueue script call: bigger batches are split (and pipelined), so one call
#: never blocks Redis for long.
ENQUEUE_CHUNK = 1000
#: Scheduled jobs promoted per claim (expired leases per call: the admin's SWEEP_BATCH).
PROMOTE_BATCH = 1000
#: Async enqueues of fewer jobs than this are coalesced with concurrent ones.
COALESCE_BELOW = 100

_POISON = poison_pill_reason(1234567).split("1234567")


class RedisBackend(
    RedisScheduling, RedisAdmin, RedisLimits, RedisOperations, RedisQuarantine, Backend
):
    """Jobs in Redis (`redis://`, `rediss://`); see the package docstring for the layout."""

    def __init__(self, url: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.url = url
        self.clock = clock
        self.target = parse_url(url)
        self.keys = Keys(self.target.prefix)
        # The server's clock (TIME) unless a clock was injected, e.g. a FakeClock in tests.
        self._server_time = isinstance(clock, SystemClock)
        self._aclient: AsyncRedis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sclient: Redis | None = None
        self._waiter = f"{os.getpid()}-{secrets.token_hex(6)}"
        self._acks: Batcher[tuple[str, Lease, Any], bool] = Batcher(self._ack_batch)
        # Enqueues made while one is in flight share the next script call.
        self._enqueues: Batcher[Sequence[NewJob], list[EnqueueResult]] = Batcher(
            self._enqueue_batch
        )
        k = self.keys
        self._ekeys = [k.all, k.seq, k.lanes, k.scheduled, k.unique, k.counts, k.waiters, k.paused]
        self._ckeys = [k.lanes, k.scheduled, k.leases, k.counts, k.paused]
        # Pickup: a parked worker sends its claim right behind its BLPOP, so Redis runs
        # the claim the moment a wake token arrives (no extra round trip). The last
        # claim's arguments say what to claim; jobs claimed that way wait in `_stash`
        # until the next `claim` call (or are released by `unregister_worker` / `close`).
        self._last_claim: tuple[str, Routing, int, float] | None = None
        self._stash: list[JobRecord] = []
        self._stash_owner: str | None = None
        self._parked: asyncio.Task[None] | None = None
        self._spare: set[asyncio.Task[Any]] = set()

    def clone(self) -> RedisBackend:
        """A new handle (its own connections) on the same store and clock."""
        return RedisBackend(self.url, clock=self.clock)

    def __repr__(self) -> str:
        return f"RedisBackend({self.target.display!r})"

    # -- plumbing ------------------------------------------------------------------------
    def _client(self) -> AsyncRedis:
        # asyncio connections belong to one event loop; a handle used from a new loop
        # (asyncio.run called twice) gets fresh ones.
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._loop is not loop:
            self._aclient = async_client(self.target)
            self._loop = loop
        return self._aclient

    def _sync(self) -> Redis:
        if self._sclient is None:
            self._sclient = sync_client(self.target)
        return self._sclient

    def _now(self) -> str:
        return "" if self._server_time else repr(self.clock.now())

    async def _run(self, name: str, keys: list[str], *args: Any) -> Any:
        with translated(self.target):
            return await run(self._client(), name, keys, [self.keys.base, self._now(), *args])

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        """Connect, load the scripts, and warn about settings that can lose jobs."""
        client = self._client()
        with translated(self.target):
            await client.ping()
            await load_all(client)
            await check_persistence(client, self.target)

    async def close(self) -> None:
        """Close this handle's connections; safe to call twice."""
        if self._aclient is not None and self._loop is asyncio.get_running_loop():
            with contextlib.suppress(Exception):
                await self._release_stash()
        client, loop = self._aclient, self._loop
        self._aclient = self._loop = None
        if client is not None:
            with contextlib.suppress(Exception):
                if loop is asyncio.get_running_loop():
                    await client.hdel(self.keys.waiters, self._waiter)
                    await client.aclose()
        if self._sclient is not None:
            self._sclient.close()
            self._sclient = None

    # -- producing -----------------------------------------------------------------------
    def _enqueue_keys(self) -> list[str]:
        return self._ekeys

    def _enqueue_args(self, jobs: Sequence[NewJob]) -> list[Any]:
        args: list[Any] = [self.keys.base, self._now(), len(jobs)]
        job_args = codec.job_args
        for job in jobs:
            args += job_args(job)
        return args

    async def enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """Store jobs in order: one script call per `ENQUEUE_CHUNK` jobs, one round trip.

        Small calls made while another enqueue is in flight are coalesced: they go out
        together in the next script call, each caller getting its own results (and an
        error reaching every caller of that call)."""
        if not jobs:
            return []
        if len(jobs) >= COALESCE_BELOW:
            return await self._enqueue_now(jobs)
        return await self._enqueues.submit(jobs)

    async def _enqueue_batch(self, calls: list[Sequence[NewJob]]) -> list[list[EnqueueResult]]:
        if len(calls) == 1:
            return [await self._enqueue_now(calls[0])]
        results = await self._enqueue_now([job for jobs in calls for job in jobs])
        out = []
        i = 0
        for jobs in calls:
            out.append(results[i : i + len(jobs)])
            i += len(jobs)
        return out

    async def _enqueue_now(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        keys = self._ekeys
        with translated(self.target):
            client = self._client()
            if len(jobs) <= ENQUEUE_CHUNK:
                replies = [await run(client, "enqueue", keys, self._enqueue_args(jobs))]
            else:
                chunks = [jobs[i : i + ENQUEUE_CHUNK] for i in range(0, len(jobs), ENQUEUE_CHUNK)]
                await load_all(client)  # a pipeline cannot load a missing script midway
                async with client.pipeline(transaction=False) as pipe:
                    for chunk in chunks:
                        pipe.evalsha(
                            script("enqueue").sha,
                            len(keys),
                            *keys,
                            *self._enqueue_args(chunk),
                        )
                    replies = await pipe.execute()
        flat = replies[0] if len(replies) == 1 else [r for reply in replies for r in reply]
        return _results(jobs, flat)

    def enqueue_sync(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """`enqueue` for code without an event loop (thread-safe)."""
        keys = self._ekeys
        with translated(self.target):
            if len(jobs) <= ENQUEUE_CHUNK:
                return _results(
                    jobs, run_sync(self._sync(), "enqueue", keys, self._enqueue_args(jobs))
                )
            out: list[EnqueueResult] = []
            for i in range(0, len(jobs), ENQUEUE_CHUNK):
                chunk = jobs[i : i + ENQUEUE_CHUNK]
                out.extend(
                    _results(
                        chunk, run_sync(self._sync(), "enqueue", keys, self._enqueue_args(chunk))
                    )
                )
            return out

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
        """Lease up to ``limit`` matching jobs in run order, waiting up to ``wait`` seconds."""
        if wait <= 0:
            return await self._claim_now(worker_id, routing, limit, lease_seconds)
        return await claim_waiting(
            self,
            lambda: self._claim_now(worker_id, routing, limit, lease_seconds),
            lambda seconds: self.wait_for_work(routing, seconds),
            wait,
        )

    async def _claim_now(
        self, worker_id: str, routing: Routing, limit: int, lease_seconds: float
    ) -> list[JobRecord]:
        """Lease up to ``limit`` matching jobs in one round trip, in run order."""
        await self._settle_parked()
        if self._stash and self._stash_owner == worker_id:
            out, self._stash = self._stash[:limit], self._stash[limit:]
            if out:
                return out
        self._last_claim = (worker_id, routing, limit, lease_seconds)
        while True:
            reply = await self._run("claim", self._ckeys, *self._claim_args(*self._last_claim))
            got = await self._claimed(reply)
            # Only quarantined records were leased: claim again rather than report no work.
            if got.jobs or not got.leased:
                return got.jobs

    def _claim_args(
        self, worker_id: str, routing: Routing, limit: int, lease_seconds: float
    ) -> list[Any]:
        return [
            worker_id,
            limit,
            repr(float(lease_seconds)),
            secrets.token_hex(16),
            routing_json(routing),
            PROMOTE_BATCH,
        ]

    async def _settle_parked(self) -> None:
        """Let a cancelled wait's in-flight BLPOP + claim finish, so no lease is lost."""
        parked, self._parked = self._parked, None
        if parked is None or parked.get_loop() is not asyncio.get_running_loop():
            return
        if not parked.done():
            await self._unblock()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(parked), SOCKET_TIMEOUT)
        if parked.done() and not parked.cancelled():
            parked.exception()  # retrieved: its caller was cancelled, nobody else reads it

    async def _unblock(self) -> None:
        """Push a token to this handle's own wake list, ending its BLPOP."""
        with contextlib.suppress(Exception):
            await self._client().lpush(self.keys.wake(self._waiter), "1")

    async def _release_stash(self, worker_id: str | None = None) -> None:
        await self._settle_parked()
        if self._stash and (worker_id is None or self._stash_owner == worker_id):
            stash, self._stash = self._stash, []
            for job in stash:
                if job.lease_token is not None:
                    with contextlib.suppress(Exception):
                        await self.release(Lease(job.id, job.lease_token))

    async def extend(self, leases: Sequence[Lease], lease_seconds: float) -> list[bool]:
        """Push held leases forward; ``False`` for each lost one."""
        if not leases:
            return []
        args: list[Any] = [repr(float(lease_seconds))]
        for lease in leases:
            args += [lease.job_id, lease.token]
        reply = await self._run("extend", [self.keys.leases, self.keys.counters], *args)
        return [r == b"1" for r in reply]

    async def complete(self, lease: Lease, result: bytes | None) -> bool:
        """Mark the job succeeded; acknowledgements made together share one round trip."""
        return await self._acks.submit(("complete", lease, result))

    async def fail(self, lease: Lease, failure: Failure) -> bool:
        """Schedule the retry or dead-letter the job; ``False`` if the lease was lost."""
        return await self._acks.submit(("fail", lease, failure))

    async def _ack_batch(self, items: list[tuple[str, Lease, Any]]) -> list[bool]:
        """Run queued completions and failures: one script each, pipelined."""
        k = self.keys
        done: list[Any] = []
        failed: list[Any] = []
        for kind, lease, extra in items:
            if kind == "complete":
                done += [lease.job_id, lease.token, b"" if extra is None else b"r" + extra]
            else:
                f: Failure = extra
                failed += [
                    lease.job_id,
                    lease.token,
                    f.error,
                    "" if f.traceback is None else "t" + f.traceback,
                    "" if f.retry_in is None else repr(float(f.retry_in)),
                ]
        calls: list[tuple[str, list[str], list[Any]]] = []
        if done:
            calls.append(
                (
                    "complete",
                    [k.leases, k.unique, k.counts, k.counters, k.done(State.SUCCEEDED)],
                    done,
                )
            )
        if failed:
            calls.append(
                (
                    "fail",
                    [
                        k.leases,
                        k.unique,
                        k.counts,
                        k.counters,
                        k.done(State.DEAD),
                        k.scheduled,
                        k.waiters,
                        k.paused,
                    ],
                    failed,
                )
            )
        replies = [iter(await self._run(name, keys, *args)) for name, keys, args in calls]
        by_kind = dict(zip([c[0] for c in calls], replies, strict=True))
        return [next(by_kind[kind]) == b"1" for kind, _, _ in items]

    async def release(self, lease: Lease) -> bool:
        """Back to ready at once, attempt returned; ``False`` if the lease was lost."""
        k = self.keys
        [ok] = await self._run(
            "release",
            [k.leases, k.lanes, k.counts, k.counters, k.waiters, k.paused],
            lease.job_id,
            lease.token,
        )
        return bool(ok == b"1")

    async def recover(self, max_recoveries: int) -> RecoveryReport:
        """Expired leases back to ready, or dead as poison pills; batch by batch."""
        k = self.keys
        keys = [
            k.leases,
            k.lanes,
            k.unique,
            k.counts,
            k.counters,
            k.done(State.DEAD),
            k.waiters,
            k.paused,
        ]
        recovered = dead = 0
        while True:
            r, d, more = await self._run(
                "recover", keys, max_recoveries, SWEEP_BATCH, _POISON[0], _POISON[1]
            )
            recovered, dead = recovered + int(r), dead + int(d)
            if more != b"1":
                return RecoveryReport(recovered, dead)

    async def wait_for_work(self, routing: Routing, timeout: float) -> None:
        """Park until an enqueue for ``routing`` wakes us, a scheduled job is due, or
        ``timeout`` passes: a blocking pop on this handle's wake list, no polling.

        After a `claim` with the same routing on this handle, that claim is pipelined
        behind the blocking pop: Redis runs it as soon as the pop returns, and the jobs
        it leases are what the next `claim` call returns."""
        if timeout <= 0:
            return
        await self._settle_parked()
        k = self.keys
        wait = float(
            await self._run(
                "park",
                [k.lanes, k.scheduled, k.waiters, k.paused],
                self._waiter,
                routing_json(routing),
                repr(float(timeout)),
            )
        )
        if wait <= 0:
            return
        _honour_cancel()
        last = self._last_claim
        # Only on the server's clock: an injected clock's "now" would be the park time.
        follow = (
            last
            if self._server_time and last is not None and last[1] == routing and last[2] > 0
            else None
        )
        self._parked = asyncio.get_running_loop().create_task(self._park(wait, follow))
        try:
            await asyncio.shield(self._parked)
        except asyncio.CancelledError:
            # The pop (and the claim behind it) may be in flight: end it at once; the
            # claim's jobs, if any, go to the stash for the next claim (or release).
            task = asyncio.get_running_loop().create_task(self._unblock())
            self._spare.add(task)
            task.add_done_callback(self._spare.discard)
            raise
        self._parked = None

    async def _park(self, wait: float, follow: tuple[str, Routing, int, float] | None) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        key = self.keys.wake(self._waiter)
        client = self._client()
        while (left := deadline - loop.time()) > 0:
            # Blocks below the socket timeout, so a dead server still shows as an error.
            block = min(left, SOCKET_TIMEOUT - 1)
            with translated(self.target):
                if follow is None:
                    if await client.blpop([key], timeout=block):
                        return
                    continue
                async with client.pipeline(transaction=False) as pipe:
                    pipe.blpop([key], timeout=block)
                    pipe.evalsha(
                        script("claim").sha,
                        len(self._ckeys),
                        *self._ckeys,
                        self.keys.base,
                        self._now(),
                        *self._claim_args(*follow),
                    )
                    popped, reply = await pipe.execute(raise_on_error=False)
            if isinstance(popped, Exception):
                with translated(self.target):
                    raise popped
            if isinstance(reply, NoScriptError):
                with translated(self.target):
                    await load_all(client)
                return  # the worker's own claim comes next
            if isinstance(reply, Exception):
                with translated(self.target):
                    raise reply
            got = await self._claimed(reply)
            if got.leased:
                self._stash += got.jobs
                self._stash_owner = follow[0]
                return
            if popped:
                return

    # -- worker registry -------------------------------------------------------------------
    def _registry(self) -> list[str]:
        return [self.keys.workers, self.keys.workers_expiry]

    async def register_worker(self, info: WorkerInfo, ttl: float) -> None:
        """Record or refresh a live worker until ``ttl`` seconds from now."""
        await self._run(
            "workers",
            self._registry(),
            "register",
            info.id,
            repr(float(ttl)),
            codec.worker_json(info),
        )

    async def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker that is shutting down (its unstarted jobs go back at once)."""
        await self._release_stash(worker_id)
        await self._run("workers", self._registry(), "unregister", worker_id, "0", "")

    async def workers(self) -> list[WorkerInfo]:
        """Live workers (expired entries are dropped on the way)."""
        flat = await self._run("workers", self._registry(), "list", "", "0", "")
        return worker_infos(flat)


def _honour_cancel() -> None:
    """Raise if this task was cancelled: redis-py can swallow a cancel that lands while it
    waits for a reply (the command still completes), and a parked worker must stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _results(jobs: Sequence[NewJob], reply: list[bytes]) -> list[EnqueueResult]:
    """enqueue.lua's reply: per job, ``b""`` if stored under its own id, else the id of
    the job that already existed."""
    return [
        EnqueueResult(job.id) if not got else EnqueueResult(got.decode(), existing=True)
        for job, got in zip(jobs, reply, strict=True)
    ]
