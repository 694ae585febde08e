"""Sending and settling messages: the entries `SendMessageBatch` takes, and the re-sends.

A message cannot change, so every state change but "succeeded" sends a new message and
then deletes the old one (two requests): a retry, a release, a deferral, a re-delay of a
job due more than 15 minutes out, and a dead job (to the dead queue). If the delete fails
after the send the job exists twice, and runs again: at-least-once, as everywhere.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from conveyor.backends.sqs.codec import MAX_BODY, encode, quarantined
from conveyor.backends.sqs.connection import SqsConnection
from conveyor.errors import BackendError, PayloadTooLarge
from conveyor.job import JobRecord

log = logging.getLogger("conveyor.backend.sqs")

#: SQS's longest message delay: a job due later is re-delayed when it comes up.
MAX_DELAY = 900
#: SQS's longest visibility timeout (12 hours).
MAX_VISIBILITY = 43_200
#: Entries per `SendMessageBatch`.
BATCH = 10
#: The message attribute that gives the reason on an unreadable body too large to wrap.
UNREADABLE_ATTRIBUTE = "conveyor-unreadable"
#: What replaces a traceback (and ends a cut error) that would not fit in an SQS message.
CUT = "[cut: the job's message would be over SQS's 256 KiB]"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to send: the job's id, and the entry SQS takes (with its body)."""

    job_id: str
    entry: dict[str, Any]

    @property
    def size(self) -> int:
        """The body's size in bytes."""
        return len(self.entry["MessageBody"].encode("utf-8"))


def visibility(seconds: float) -> int:
    """A lease in whole seconds, never shorter than asked, within SQS's limits."""
    return max(0, min(MAX_VISIBILITY, math.ceil(seconds)))


def outgoing(job: JobRecord, now: float, *, fifo: bool, dedup: str | None = None) -> Outgoing:
    """The message that carries ``job``, sent at ``now``.

    On a standard queue a job due later waits as ``DelaySeconds`` (up to 15 minutes; a
    longer wait is finished when it comes up). FIFO queues take no per-message delay: a
    FIFO job due later waits out its time on its first receipt. ``dedup`` (FIFO only) is
    the deduplication id: from the unique key, or random so a re-send is never dropped.
    """
    body = encode(job, now)
    size = len(body.encode("utf-8"))
    if size > MAX_BODY and (job.traceback or job.last_error):
        body = _fitted(job, now)
        size = len(body.encode("utf-8"))
    if size > MAX_BODY:
        raise PayloadTooLarge(
            f"job {job.id} of task {job.task!r} would be an SQS message of {size} bytes, over "
            f"SQS's {MAX_BODY}: pass large data by reference (a URL or a storage key)"
        )
    entry: dict[str, Any] = {"Id": "0", "MessageBody": body}
    if fifo:
        entry["MessageGroupId"] = job.id
        entry["MessageDeduplicationId"] = dedup or secrets.token_hex(16)
    else:
        delay = math.ceil(job.run_at - now)
        if delay > 0:
            entry["DelaySeconds"] = min(MAX_DELAY, delay)
    return Outgoing(job.id, entry)


def _fitted(job: JobRecord, now: float) -> str:
    """The body of ``job`` with its traceback, then its error, cut until it fits in SQS: a
    retry or a dead job must not be refused for a long error (the job itself fitted)."""
    job = replace(job, traceback=CUT)
    body = encode(job, now)
    error = job.last_error or ""
    while len(body.encode("utf-8")) > MAX_BODY and error:
        error = error[: len(error) // 2]
        job = replace(job, last_error=f"{error} {CUT}")
        body = encode(job, now)
    return body


def dedup_id(unique_key: str) -> str:
    """A FIFO deduplication id for a unique key (SQS takes at most 128 plain characters)."""
    return hashlib.sha256(unique_key.encode("utf-8")).hexdigest()


def batches(messages: Sequence[Outgoing]) -> Iterator[list[Outgoing]]:
    """``messages`` in order, cut into batches SQS takes: 10 entries, 256 KiB in all."""
    batch: list[Outgoing] = []
    total = 0
    for message in messages:
        if batch and (len(batch) == BATCH or total + message.size > MAX_BODY):
            yield batch
            batch, total = [], 0
        batch.append(message)
        total += message.size
    if batch:
        yield batch


async def send(conn: SqsConnection, url: str, messages: Sequence[Outgoing]) -> list[str]:
    """Send ``messages`` to one queue in order, in batches; returns the ids of the jobs SQS
    did not take (the others were stored)."""
    refused: list[str] = []
    for batch in batches(messages):
        entries = [{**m.entry, "Id": str(i)} for i, m in enumerate(batch)]
        refused += [batch[int(i)].job_id for i in await conn.send_batch(url, entries)]
    return refused


def refused_error(refused: Sequence[str]) -> BackendError:
    """The error for jobs SQS did not take, naming them."""
    return BackendError(
        f"SQS did not take {len(refused)} job(s) ({', '.join(refused[:10])}"
        f"{', ...' if len(refused) > 10 else ''}) in SendMessageBatch; the other jobs of this "
        "enqueue were stored: enqueue those again"
    )


def raw_dead(body: str, reason: str, *, fifo: bool) -> Outgoing:
    """The dead-queue message for a body that could not be read: the reason and the raw
    body as JSON (`quarantined`) or, when that would be over SQS's size, the raw body as it
    came with the reason in its ``conveyor-unreadable`` message attribute."""
    wrapped = quarantined(body, reason)
    entry: dict[str, Any] = {"Id": "0", "MessageBody": wrapped}
    if len(wrapped.encode("utf-8")) > MAX_BODY:
        entry["MessageBody"] = body
        # Attributes count towards SQS's size: the reason is cut to the room left, if any.
        room = MAX_BODY - len(body.encode("utf-8")) - len(UNREADABLE_ATTRIBUTE) - len("String")
        why = reason.encode("utf-8")[: min(1024, room)].decode("utf-8", "ignore")
        if why:
            entry["MessageAttributes"] = {
                UNREADABLE_ATTRIBUTE: {"DataType": "String", "StringValue": why}
            }
    if fifo:
        entry.update(MessageGroupId="unreadable", MessageDeduplicationId=secrets.token_hex(16))
    return Outgoing("unreadable", entry)


async def replace_message(
    conn: SqsConnection, url: str, receipt: str, message: Outgoing, old_url: str
) -> None:
    """Send ``message`` to ``url``, then delete the message ``receipt`` of ``old_url``.

    Once the new message is sent the change is made: a delete that fails then is logged,
    not raised, so the caller does not try again and send the job a second time. The old
    message comes back after its visibility timeout and the job runs again (at-least-once).
    """
    refused = await send(conn, url, [message])
    if refused:
        raise refused_error(refused)
    try:
        await conn.call("DeleteMessage", QueueUrl=old_url, ReceiptHandle=receipt)
    except BackendError as exc:
        log.warning(
            "job %s: its new SQS message was sent but the old one was not deleted (%s): the "
            "old one comes back after its visibility timeout and runs again",
            message.job_id,
            exc,
        )
