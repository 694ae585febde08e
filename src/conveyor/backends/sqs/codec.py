"""The message body: a job as JSON, and what a dead job carries.

```
{"v": 1, "id", "task", "queue", "priority": 0|1|2, "payload": base64, "headers": {...},
 "attempts": settled attempts, "max_retries", "timeout", "run_at", "created_at",
 "updated_at", "unique_key", "recoveries": lost leases of earlier messages,
 "last_error", "traceback", "sent_at": when this message was sent (store clock)}
```

A message is never changed in place (SQS cannot): a retry, a release, a deferral or a
re-delay sends a new message with the new fields and deletes the old one. A dead job is
sent to the dead queue with ``state``, ``failed_at`` and its error; a body that cannot be
read goes there as ``{"v": 1, "unreadable": why, "raw": the body}``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from conveyor.job import JobRecord, NewJob, Priority, State

VERSION = 1
#: SQS's largest message (256 KiB): a body over it is refused at enqueue.
MAX_BODY = 262_144


class Unreadable(ValueError):
    """A message body that is not a job this code can read (the reason is the message)."""


@dataclass(frozen=True, slots=True)
class Received:
    """A message as a claim received it."""

    body: str
    receipt: str
    receive_count: int


def new_record(job: NewJob, now: float) -> JobRecord:
    """The record of a job about to be sent: ready, or scheduled when due later."""
    run_at = job.due(now)
    return JobRecord(
        id=job.id,
        task=job.task,
        queue=job.queue,
        priority=job.priority,
        state=State.SCHEDULED if run_at > now else State.READY,
        payload=job.payload,
        headers=dict(job.headers),
        attempts=0,
        max_retries=job.max_retries,
        timeout=job.timeout,
        run_at=run_at,
        created_at=now,
        updated_at=now,
        unique_key=job.unique_key,
    )


def encode(job: JobRecord, sent_at: float) -> str:
    """The body of a message that carries ``job``."""
    body: dict[str, Any] = {
        "v": VERSION,
        "id": job.id,
        "task": job.task,
        "queue": job.queue,
        "priority": int(job.priority),
        "payload": base64.b64encode(job.payload).decode("ascii"),
        "headers": job.headers,
        "attempts": job.attempts,
        "max_retries": job.max_retries,
        "timeout": job.timeout,
        "run_at": job.run_at,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "unique_key": job.unique_key,
        "recoveries": job.recoveries,
        "last_error": job.last_error,
        "traceback": job.traceback,
        "sent_at": sent_at,
    }
    if job.state is State.DEAD:
        body.update(state="dead", failed_at=job.failed_at, finished_at=job.finished_at)
    return orjson.dumps(body).decode("utf-8")


def decode(body: str) -> tuple[JobRecord, float]:
    """The job a message carries (ready: the claim decides what happens next) and its
    ``sent_at``; `Unreadable` when it is not a version-1 job body."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Unreadable(f"the message body is not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise Unreadable("the message body is not a Conveyor job (no version 1 marker)")
    try:
        job = JobRecord(
            id=_text(data["id"]),
            task=_text(data["task"]),
            queue=_text(data["queue"]),
            priority=Priority(int(data["priority"])),
            state=State.READY,
            payload=base64.b64decode(_text(data["payload"]), validate=True),
            headers=dict(data["headers"]),
            attempts=int(data["attempts"]),
            max_retries=int(data["max_retries"]),
            timeout=float(data["timeout"]),
            run_at=float(data["run_at"]),
            created_at=float(data["created_at"]),
            updated_at=float(data["updated_at"]),
            unique_key=data.get("unique_key"),
            recoveries=int(data.get("recoveries") or 0),
            last_error=data.get("last_error"),
            traceback=data.get("traceback"),
        )
        return job, float(data["sent_at"])
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise Unreadable(f"the job in the message body is damaged ({exc!r})") from None


def quarantined(body: str, reason: str) -> str:
    """The dead-queue body for a message that could not be read: the reason and the raw body."""
    return orjson.dumps({"v": VERSION, "unreadable": reason, "raw": body}).decode("utf-8")


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, found {type(value).__name__}")
    return value
