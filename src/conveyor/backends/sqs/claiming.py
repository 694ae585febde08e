"""Claiming on SQS: receive in priority order, then decide for each message what it is.

For each SQS queue the routing matches (every ``-high`` queue before any ``-normal`` one),
``ReceiveMessage`` with the lease as its visibility timeout, up to the claim's limit. Each
message received is then one of:

* **unreadable** → sent to the dead queue with the reason and its raw body, deleted;
* **for a task this worker does not run** (``Routing.tasks``) → passed over: sent again
  unchanged and deleted, so it does not count as a lost lease. SQS cannot filter by task:
  give each task type its own queue to avoid this round trip;
* **not due yet** (a delay over 15 minutes, or any delay on a FIFO queue) → re-delayed;
* **out of recoveries** (SQS's ``ApproximateReceiveCount`` says its lease was lost
  ``max_recoveries`` times in all) → dead as a poison pill;
* otherwise **claimed**: running, one more attempt, its lease in the `LeaseBook`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any

from conveyor.backends.base import poison_pill_reason
from conveyor.backends.sqs.codec import Unreadable, decode
from conveyor.backends.sqs.connection import MISSING, SqsConnection, error_code
from conveyor.backends.sqs.leases import Held, LeaseBook, new_token
from conveyor.backends.sqs.messages import (
    MAX_VISIBILITY,
    Outgoing,
    outgoing,
    raw_dead,
    replace_message,
    visibility,
)
from conveyor.backends.sqs.naming import QueueName
from conveyor.clock import Clock
from conveyor.errors import BackendError
from conveyor.job import JobRecord, Routing, State

log = logging.getLogger("conveyor.backend.sqs")

#: Most messages one ``ReceiveMessage`` returns.
RECEIVE_MAX = 10
#: A long poll lasts at most 1/POLL_PER_LEASE of the lease (a 30 s lease still polls 5 s):
#: a lease is counted from before the receive, but SQS starts the visibility timeout when
#: it returns the message, which a long poll may do at its very end. A longer poll would
#: hand out leases already spent, their acknowledgements refused.
POLL_PER_LEASE = 4


@dataclass(slots=True)
class Pass:
    """What one claim pass saw besides the jobs it claimed."""

    #: Messages passed over: for a task the worker does not run, sent again.
    passed_over: int = 0


class Claimer:
    """Receives messages and turns them into claimed jobs, for one handle."""

    def __init__(
        self, conn: SqsConnection, book: LeaseBook, clock: Clock, max_recoveries: int
    ) -> None:
        self.conn = conn
        self.book = book
        self.clock = clock
        self.max_recoveries = max_recoveries

    async def claim(
        self,
        worker_id: str,
        routing: Routing,
        queues: list[tuple[QueueName, str]],
        limit: int,
        lease_seconds: float,
        poll: int,
        seen: Pass,
    ) -> list[JobRecord]:
        """One pass over ``queues`` in order, long-polling ``poll`` seconds on the first
        receive; up to ``limit`` jobs."""
        out: list[JobRecord] = []
        if routing.tasks is not None and not routing.tasks:
            return out  # no task at all: receiving would only pass every message over
        for name, url in queues:
            while len(out) < limit:
                want = min(RECEIVE_MAX, limit - len(out))
                started = self.clock.now()
                try:
                    reply = await self.conn.call(
                        "ReceiveMessage",
                        QueueUrl=url,
                        MaxNumberOfMessages=want,
                        VisibilityTimeout=visibility(lease_seconds),
                        WaitTimeSeconds=poll,
                        MessageSystemAttributeNames=["ApproximateReceiveCount"],
                    )
                except BackendError as exc:
                    if error_code(exc) not in MISSING:
                        raise
                    self.conn.forget(name.sqs)  # deleted since it was looked up
                    break
                poll = 0
                messages = reply.get("Messages", [])
                before = seen.passed_over
                for message in messages:
                    job = await self._take(
                        message, url, routing, worker_id, started, lease_seconds, seen
                    )
                    if job is not None:
                        out.append(job)
                # Stop on this queue when it is drained, or when a message was passed over
                # (sent again, it would come straight back in this same pass).
                if len(messages) < want or seen.passed_over > before:
                    break
            if len(out) >= limit:
                break
        return out

    async def _take(
        self,
        message: dict[str, Any],
        url: str,
        routing: Routing,
        worker_id: str,
        started: float,
        lease_seconds: float,
        seen: Pass,
    ) -> JobRecord | None:
        body = str(message.get("Body", ""))
        receipt = str(message["ReceiptHandle"])
        now = self.clock.now()
        fifo = self.conn.options.fifo
        try:
            job, sent_at = decode(body)
        except Unreadable as exc:
            log.error("an SQS message that is not a job was moved to the dead queue: %s", exc)
            await self._dead(url, receipt, None, raw_dead(body, str(exc), fifo=fifo), now)
            return None
        receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        lost = receives - 1 - self._fifo_redelays(job, sent_at)
        job.recoveries += max(0, lost)  # a re-sent message carries its lost leases on
        if routing.tasks is not None and job.task not in routing.tasks:
            seen.passed_over += 1
            await self._resend(url, receipt, job, now)
            return None
        if job.run_at > now:
            await self._redelay(url, receipt, job, sent_at, now)
            return None
        if job.recoveries >= self.max_recoveries:
            dead = replace(
                job,
                state=State.DEAD,
                last_error=poison_pill_reason(job.recoveries),
                traceback=None,
                failed_at=now,
                finished_at=now,
                updated_at=now,
            )
            await self._dead(url, receipt, dead, None, now)
            return None
        token = new_token()
        # SQS hides a message 12 hours at most: a longer lease would outlive the message's
        # visibility timeout, and a late acknowledgement would pass the book's check.
        lease_seconds = min(lease_seconds, MAX_VISIBILITY)
        claimed = replace(
            job,
            state=State.RUNNING,
            attempts=job.attempts + 1,
            lease_token=token,
            lease_expires_at=started + lease_seconds,
            worker_id=worker_id,
            started_at=now,
            updated_at=now,
        )
        self.book.add(token, Held(url, receipt, claimed, started + lease_seconds))
        return replace(claimed)

    def _fifo_redelays(self, job: JobRecord, sent_at: float) -> int:
        """Receipts of a FIFO message spent waiting for its run_at (not lost leases)."""
        if not self.conn.options.fifo or job.run_at <= sent_at:
            return 0
        return math.ceil((job.run_at - sent_at) / MAX_VISIBILITY)

    async def _resend(self, url: str, receipt: str, job: JobRecord, now: float) -> None:
        fifo = self.conn.options.fifo
        await replace_message(self.conn, url, receipt, outgoing(job, now, fifo=fifo), url)

    async def _redelay(
        self, url: str, receipt: str, job: JobRecord, sent_at: float, now: float
    ) -> None:
        if self.conn.options.fifo:
            # FIFO messages take no delay of their own: this one waits out its time hidden,
            # within SQS's 12 hours of visibility; past that it is sent again.
            wait = min(visibility(job.run_at - now), MAX_VISIBILITY - math.ceil(now - sent_at))
            if wait > 0:
                try:
                    await self.conn.call(
                        "ChangeMessageVisibility",
                        QueueUrl=url,
                        ReceiptHandle=receipt,
                        VisibilityTimeout=wait,
                    )
                    return
                except BackendError:
                    pass  # past SQS's 12 hours: send it again instead
        await self._resend(url, receipt, job, now)

    async def _dead(
        self, url: str, receipt: str, job: JobRecord | None, raw: Outgoing | None, now: float
    ) -> None:
        dead_url = await self.conn.url(self.conn.names.dead, create=True)
        assert dead_url is not None  # created when missing (or a ConfigError)
        if job is not None:
            raw = outgoing(job, now, fifo=self.conn.options.fifo)
        assert raw is not None
        await replace_message(self.conn, dead_url, receipt, raw, url)
