"""`SqsBackend`: the core job-store verbs on Amazon SQS (or an SQS-compatible server).

What maps to what:

| Conveyor | SQS |
|---|---|
| a queue, a priority | one SQS queue: ``{prefix}{queue}``, ``-high``, ``-low`` (made when used) |
| enqueue (one or many) | ``SendMessageBatch``, 10 per request; a delay as ``DelaySeconds`` |
| claim, and its lease | ``ReceiveMessage`` with the lease as the visibility timeout |
| claim(wait=) | long polling on a single queue; several queues are polled each second |
| extend (heartbeat) | ``ChangeMessageVisibility`` |
| complete | ``DeleteMessage`` |
| fail (retry), release, defer | a new message (with its delay), then ``DeleteMessage`` |
| fail (dead), poison pill | a message to ``{prefix}dead-letters``, then ``DeleteMessage`` |
| recover | nothing: SQS returns a message whose visibility timeout ran out by itself |
| unique keys | FIFO queues (``?fifo=true``): the key is the deduplication id |

`get` returns ``None``: SQS cannot read a message by id, and this store keeps no record
beside the messages (docs/sqs.md). Fencing is the `LeaseBook`'s (``leases``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import Any, Self, TypeVar

from conveyor.backends.base import Backend, RecoveryReport, release_claimed
from conveyor.backends.capabilities import Limits
from conveyor.backends.sqs.claiming import POLL_PER_LEASE, Claimer, Pass
from conveyor.backends.sqs.codec import new_record
from conveyor.backends.sqs.connection import LONG_POLL, MISSING, SqsConnection, error_code
from conveyor.backends.sqs.leases import Held, LeaseBook
from conveyor.backends.sqs.messages import (
    MAX_VISIBILITY,
    Outgoing,
    dedup_id,
    outgoing,
    refused_error,
    replace_message,
    send,
    visibility,
)
from conveyor.backends.sqs.options import parse_url
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.errors import BackendError, ConfigError
from conveyor.job import EnqueueResult, Failure, JobRecord, Lease, NewJob, Routing, State

log = logging.getLogger("conveyor.backend.sqs")
T = TypeVar("T")

#: Seconds between polls while waiting on several SQS queues (one long-polls instead).
IDLE_POLL = 1.0
#: SQS's answers to a visibility change for a message that is no longer ours.
_LOST = {"ReceiptHandleIsInvalid", "MessageNotInflight", "InvalidParameterValue"}


class SqsBackend(Backend):
    """Jobs as SQS messages; ``sqs://REGION``. The core verbs, plus `Limits` when the URL
    names a store to keep them (``?limits=redis://...``)."""

    #: SQS reads a message only by receiving it: no job can be looked up by id.
    reads_jobs = False

    def __init__(
        self,
        url: str,
        *,
        clock: Clock = SYSTEM_CLOCK,
        book: LeaseBook | None = None,
        limits_store: Backend | None = None,
    ) -> None:
        from conveyor.backends import create_backend
        from conveyor.redaction import redact_url

        self.url = url
        self.clock = clock
        self.options = parse_url(url)
        self._conn = SqsConnection(self.options)
        self._book = LeaseBook() if book is None else book
        self._claimer = Claimer(self._conn, self._book, clock, self.options.max_recoveries)
        self._portal: _Portal | None = None
        self._limits_store = limits_store
        if self._limits_store is None and self.options.limits is not None:
            self._limits_store = create_backend(self.options.limits, clock=clock)
        if self._limits_store is not None and not self._limits_store.supports(Limits):
            raise ConfigError(
                f"sqs:// option limits={redact_url(self.options.limits or '')!r} names a store "
                "without rate limits or concurrency slots: use redis://, postgresql:// or "
                "sqlite:///"
            )
        limits = self._limits_store.limits if self._limits_store is not None else None
        super().__init__(limits=limits)

    def clone(self) -> Self:
        """Another handle on the same queues, sharing this process's leases."""
        other = None if self._limits_store is None else self._limits_store.clone()
        return type(self)(self.url, clock=self.clock, book=self._book, limits_store=other)

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        await self._conn.open()
        try:
            await self._check_dead_queue()
            if self._limits_store is not None:
                await self._limits_store.open()
        except BaseException:
            await self._conn.close()
            raise

    async def _check_dead_queue(self) -> None:
        if not self.options.create and await self._conn.url(self._conn.names.dead) is None:
            # Without it a dead job could go nowhere, and would run again and again.
            raise ConfigError(
                f"the SQS queue {self._conn.names.dead!r} (where dead jobs go) does not exist "
                "and the sqs:// URL says create=false: create it, or drop create=false"
            )

    async def close(self) -> None:
        portal, self._portal = self._portal, None
        if portal is not None:
            await asyncio.to_thread(portal.close)
        await self._conn.close()
        if self._limits_store is not None:
            await self._limits_store.close()

    async def migrate(self) -> str:
        await self.open()
        return "nothing to migrate: SQS queues are created when a job is first sent to them"

    # -- producing -----------------------------------------------------------------------
    async def enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        now = self.clock.now()
        results: list[EnqueueResult] = []
        by_queue: dict[str, list[Outgoing]] = {}
        held_keys: dict[str, str] = {}
        for job in jobs:
            name = self._conn.names.of(job.queue, job.priority)
            dedup = None
            if job.unique_key is not None:
                dedup = self._unique(job, held_keys)
                if job.unique_key in held_keys:
                    results.append(EnqueueResult(held_keys[job.unique_key], existing=True))
                    continue
                held_keys[job.unique_key] = job.id
            record = new_record(job, now)
            message = outgoing(record, now, fifo=self.options.fifo, dedup=dedup)
            by_queue.setdefault(name.sqs, []).append(message)
            results.append(EnqueueResult(job.id))
        refused: list[str] = []
        for sqs_name, messages in by_queue.items():
            refused += await self._send(sqs_name, messages)
        if refused:
            raise refused_error(refused)
        return results

    async def _send(self, sqs_name: str, messages: list[Outgoing]) -> list[str]:
        url = await self._conn.url(sqs_name, create=True)
        assert url is not None  # created when missing (or a ConfigError)
        try:
            return await send(self._conn, url, messages)
        except BackendError as exc:
            if error_code(exc) not in MISSING:
                raise
        self._conn.forget(sqs_name)  # deleted since it was looked up: make it again
        url = await self._conn.url(sqs_name, create=True)
        assert url is not None
        return await send(self._conn, url, messages)

    def _unique(self, job: NewJob, held: dict[str, str]) -> str:
        if not self.options.fifo:
            raise ConfigError(
                f"unique_key={job.unique_key!r} (task {job.task!r}): the sqs:// store keeps "
                "unique keys only on FIFO queues, for SQS's 5-minute deduplication window; "
                "add ?fifo=true to the URL, or enqueue without unique_key"
            )
        return dedup_id(job.unique_key or "")

    def enqueue_sync(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        return self._sync(lambda store: store.enqueue(jobs))

    def _sync(self, call: Callable[[SqsBackend], Awaitable[T]]) -> T:
        if self._portal is None:
            self._portal = _Portal(self)
        return self._portal.run(call)

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
        """Receive up to ``limit`` jobs in priority order; with ``wait``, long-poll (one
        queue) or poll each second (several) until something comes or ``wait`` passes."""
        if limit > 0 and routing.tasks is not None and not routing.tasks:
            await asyncio.sleep(wait)  # no task at all: nothing can come (and no spinning)
            return []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (wait if limit > 0 else 0.0)
        while True:
            queues = await self._conn.queues(routing) if limit > 0 else []
            left = deadline - loop.time()
            poll = min(LONG_POLL, int(left)) if len(queues) == 1 else 0
            poll = min(poll, int(lease_seconds / POLL_PER_LEASE))
            seen = Pass()
            jobs = await self._shielded(
                self._claimer.claim(worker_id, routing, queues, limit, lease_seconds, poll, seen)
            )
            left = deadline - loop.time()
            if jobs or left <= 0:
                return jobs
            if poll == 0 or seen.passed_over:
                await asyncio.sleep(min(left, IDLE_POLL))

    async def _shielded(self, claim: Awaitable[list[JobRecord]]) -> list[JobRecord]:
        task = asyncio.ensure_future(claim)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            await release_claimed(self, task)
            raise

    async def extend(self, leases: Sequence[Lease], lease_seconds: float) -> list[bool]:
        return list(await asyncio.gather(*(self._extend(x, lease_seconds) for x in leases)))

    async def _extend(self, lease: Lease, lease_seconds: float) -> bool:
        lease_seconds = min(lease_seconds, MAX_VISIBILITY)  # SQS's longest, as at the claim
        started = self.clock.now()
        held = self._book.holds(lease.job_id, lease.token, started)
        if held is None:
            return False
        try:
            await self._conn.call(
                "ChangeMessageVisibility",
                QueueUrl=held.queue_url,
                ReceiptHandle=held.receipt,
                VisibilityTimeout=visibility(lease_seconds),
            )
        except BackendError as exc:
            if error_code(exc) in _LOST:
                self._book.drop(lease.token)
                return False
            raise
        self._book.extend(lease.token, started + lease_seconds)
        return True

    async def complete(self, lease: Lease, result: bytes | None) -> bool:
        """Delete the message. The result is not kept: nothing could read it back."""
        held = self._book.holds(lease.job_id, lease.token, self.clock.now())
        if held is None:
            return False
        try:
            await self._conn.call(
                "DeleteMessage", QueueUrl=held.queue_url, ReceiptHandle=held.receipt
            )
        except BackendError as exc:
            if error_code(exc) not in _LOST:
                raise
            # The message is gone or no longer ours (its queue purged, say): nothing to settle.
            log.warning("job %s: SQS no longer knows its message (%s)", lease.job_id, exc)
            self._book.drop(lease.token)
            return False
        self._book.drop(lease.token)
        return True

    async def fail(self, lease: Lease, failure: Failure) -> bool:
        now = self.clock.now()
        held = self._book.holds(lease.job_id, lease.token, now)
        if held is None:
            return False
        job = replace(
            held.job, last_error=failure.error, traceback=failure.traceback, updated_at=now
        )
        if failure.retry_in is None:
            dead = replace(job, state=State.DEAD, failed_at=now, finished_at=now)
            await self._settle(held, lease, await self._dead_url(), dead, now)
        else:
            retry = replace(job, state=State.SCHEDULED, run_at=now + max(0.0, failure.retry_in))
            await self._settle(held, lease, held.queue_url, retry, now)
        return True

    async def release(self, lease: Lease) -> bool:
        now = self.clock.now()
        held = self._book.holds(lease.job_id, lease.token, now)
        if held is None:
            return False
        back = replace(held.job, attempts=held.job.attempts - 1, run_at=now, updated_at=now)
        await self._settle(held, lease, held.queue_url, back, now)
        return True

    async def defer(
        self, lease: Lease, delay: float, headers: dict[str, Any] | None = None
    ) -> bool:
        now = self.clock.now()
        held = self._book.holds(lease.job_id, lease.token, now)
        if held is None:
            return False
        later = replace(
            held.job,
            attempts=held.job.attempts - 1,
            run_at=now + max(0.0, delay),
            headers=held.job.headers if headers is None else dict(headers),
            updated_at=now,
        )
        await self._settle(held, lease, held.queue_url, later, now)
        return True

    async def _settle(self, held: Held, lease: Lease, url: str, job: JobRecord, now: float) -> None:
        message = outgoing(job, now, fifo=self.options.fifo)
        await replace_message(self._conn, url, held.receipt, message, held.queue_url)
        self._book.drop(lease.token)

    async def _dead_url(self) -> str:
        url = await self._conn.url(self._conn.names.dead, create=True)
        assert url is not None  # created when missing (or a ConfigError)
        return url

    async def recover(self, max_recoveries: int) -> RecoveryReport:
        """Nothing to do: SQS makes a message whose lease ran out visible again by itself,
        and a claim dead-letters one out of recoveries (``?max_recoveries=``)."""
        self._book.forget_expired(self.clock.now())
        return RecoveryReport()

    # -- reading -------------------------------------------------------------------------
    async def get(self, job_id: str) -> JobRecord | None:
        """Always ``None``: SQS cannot read a message by id (docs/sqs.md)."""
        return None

    def get_sync(self, job_id: str) -> JobRecord | None:
        """Always ``None``: SQS cannot read a message by id (docs/sqs.md)."""
        return None


class _Portal:
    """An event loop in a thread of its own, with its own handle, for the sync verbs."""

    def __init__(self, owner: SqsBackend) -> None:
        self._owner = owner
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="conveyor-sqs-sync", daemon=True
        )
        self._thread.start()
        self._store: SqsBackend | None = None
        self._lock = threading.Lock()

    def run(self, call: Callable[[SqsBackend], Awaitable[T]]) -> T:
        with self._lock:
            future: Future[T] = asyncio.run_coroutine_threadsafe(self._call(call), self._loop)
            return future.result(timeout=120)

    async def _call(self, call: Callable[[SqsBackend], Awaitable[T]]) -> T:
        if self._store is None:
            store = SqsBackend(self._owner.url, clock=self._owner.clock, book=self._owner._book)
            await store.open()
            self._store = store
        return await call(self._store)

    def close(self) -> None:
        if self._store is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._store.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
