"""Jobs: their states, the one table of allowed state changes, and the records backends keep.

```
            enqueue(delay)            due
  (new) ──────────────► scheduled ─────────► ready ──claim──► running ──► succeeded
    │                      ▲   ▲                ▲                │  │
    └──── enqueue ─────────┼───┼──────► ready   │ release/recover│  └──► dead (no retries left,
                           │   └── retry ───────┼────────────────┘        Fail, poison pill)
                           └─ failed retry ─────┘
  scheduled | ready | running ──cancel──► cancelled      dead ──retry──► ready
```
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from conveyor.attempts import Attempt, JobProgress
from conveyor.errors import ConfigError, InvalidTransition


class State(StrEnum):
    """Where a job is in its life."""

    SCHEDULED = "scheduled"
    READY = "ready"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"


#: The allowed state changes. Every backend obeys this table; the contract suite checks it.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.SCHEDULED: frozenset({State.READY, State.CANCELLED}),
    State.READY: frozenset({State.RUNNING, State.CANCELLED}),
    State.RUNNING: frozenset(
        {State.SUCCEEDED, State.SCHEDULED, State.READY, State.DEAD, State.CANCELLED}
    ),
    State.SUCCEEDED: frozenset(),
    State.DEAD: frozenset({State.READY}),
    State.CANCELLED: frozenset(),
}

#: States in which a job still holds its unique key.
ACTIVE_STATES = frozenset({State.SCHEDULED, State.READY, State.RUNNING})
#: States a job never leaves on its own.
FINAL_STATES = frozenset({State.SUCCEEDED, State.DEAD, State.CANCELLED})


def check_transition(old: State, new: State) -> None:
    """Raise `InvalidTransition` unless ``old → new`` is in `TRANSITIONS`."""
    if new not in TRANSITIONS[old]:
        raise InvalidTransition(f"a job cannot go from {old.value!r} to {new.value!r}")


class Priority(IntEnum):
    """Strict priority: every ready `HIGH` job runs before any `NORMAL` one, and so on.

    Numbers are accepted too (``priority=10``, ``--priority -5``), and the larger one runs
    first, as in Django's tasks, Huey, procrastinate and RabbitMQ; each lands on one of the
    three levels by its sign, relative to the default 0: above 0 is ``high``, 0 is
    ``normal``, below 0 is ``low`` (docs/concepts.md). The member values (0, 1, 2) are only
    how stores keep the level.
    """

    HIGH = 0
    NORMAL = 1
    LOW = 2

    @classmethod
    def parse(cls, value: str | int | Priority) -> Priority:
        """Accept ``"high"``, ``"normal"``, ``"low"``, a `Priority`, or any whole number
        (or its text, ``"10"``) mapped by sign: ``> 0`` high, ``0`` normal, ``< 0`` low."""
        if isinstance(value, Priority):
            return value
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str):
            text = value.strip()
            if text.upper() in cls.__members__:
                return cls[text.upper()]
            if re.fullmatch(r"[+-]?\d+", text):
                number = int(text)
        if number is not None:
            return cls.HIGH if number > 0 else cls.NORMAL if number == 0 else cls.LOW
        raise ConfigError(
            f"unknown priority {value!r}: use 'high', 'normal' or 'low', or a whole number "
            "(larger runs first: above 0 is high, 0 normal, below 0 low)"
        )

    @property
    def label(self) -> str:
        """The lower-case name, as users write it."""
        return self.name.lower()


def new_job_id() -> str:
    """A 26-character id that sorts by creation time (48-bit ms time, 56 random bits)."""
    ms = int(time.time() * 1000)
    return f"{ms:012x}{os.urandom(7).hex()}"


def new_job_ids(count: int) -> list[str]:
    """``count`` ids made as `new_job_id` makes them, for a batch: one clock read and one
    read of the system's random source for all of them (each id keeps its own 56 random
    bits, so two are no likelier to collide than two made one by one)."""
    if count == 1:
        return [new_job_id()]  # a single enqueue(): no slicing
    head = f"{int(time.time() * 1000):012x}"
    noise = os.urandom(7 * count).hex()
    return [head + noise[i : i + 14] for i in range(0, 14 * count, 14)]


@dataclass(slots=True)
class NewJob:
    """What `enqueue` hands a backend: one job, its payload already encoded.

    When it is due: at ``run_at`` (a Unix time the user gave, absolute by definition), else
    ``delay`` seconds after the backend's own "now" at enqueue (``delay=``: a store on server
    time must not be handed the producer host's clock), else at once.
    """

    task: str
    queue: str
    priority: Priority
    payload: bytes
    max_retries: int
    timeout: float
    run_at: float | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    unique_key: str | None = None
    id: str = field(default_factory=new_job_id)
    delay: float | None = None

    def due(self, now: float) -> float:
        """The ``run_at`` to store, given the backend's ``now``."""
        if self.run_at is not None:
            return self.run_at
        return now if self.delay is None else now + self.delay


@dataclass(slots=True)
class EnqueueResult:
    """The id a job was stored under, and whether a unique key matched an existing job."""

    id: str
    existing: bool = False


@dataclass(slots=True)
class JobRecord:
    """A stored job as a backend returns it."""

    id: str
    task: str
    queue: str
    priority: Priority
    state: State
    payload: bytes
    headers: dict[str, Any]
    attempts: int
    max_retries: int
    timeout: float
    run_at: float
    created_at: float
    updated_at: float
    unique_key: str | None = None
    recoveries: int = 0
    lease_token: str | None = None
    lease_expires_at: float | None = None
    worker_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    last_error: str | None = None
    traceback: str | None = None
    result: bytes | None = None
    failed_at: float | None = None
    #: Set when the stored record could not be decoded (see `conveyor.backends.unreadable`):
    #: what is wrong with it. The other fields are then best-effort stand-ins.
    unreadable: str | None = None
    #: For an unreadable record: every stored field as text, for inspection.
    raw: dict[str, str] | None = None
    #: The attempts that ended without succeeding, oldest first (bounded: `conveyor.attempts`).
    attempt_log: tuple[Attempt, ...] = ()
    #: The latest progress the task reported, with the attempt that reported it.
    progress: JobProgress | None = None

    def attempt_history(self) -> list[Attempt]:
        """Every attempt this job had that the store kept, oldest first.

        The logged ones (failed, dead, lost), then the one running now or the one that
        succeeded, read off the job's own fields. A dead job whose store kept no log (a
        record written before the log existed) shows its last failure as one attempt.
        """
        out = list(self.attempt_log)
        if self.state is State.RUNNING:
            out.append(Attempt(self.attempts, "running", self.worker_id, self.started_at, None))
        elif self.state is State.SUCCEEDED and self.started_at is not None:
            out.append(
                Attempt(
                    self.attempts,
                    "succeeded",
                    self.worker_id,
                    self.started_at,
                    self.finished_at,
                )
            )
        elif self.state is State.DEAD and not out and self.last_error is not None:
            out.append(
                Attempt(
                    self.attempts,
                    "dead",
                    self.worker_id,
                    self.started_at,
                    self.failed_at,
                    self.last_error,
                    self.traceback,
                )
            )
        return out

    def current_progress(self) -> JobProgress | None:
        """The reported progress, if it belongs to the current (or final) attempt."""
        progress = self.progress
        if progress is None or progress.attempt != self.attempts:
            return None
        return progress

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly view, with the payload and result left as text."""
        progress = self.current_progress()
        return {
            "id": self.id,
            "task": self.task,
            "queue": self.queue,
            "priority": self.priority.label,
            "state": self.state.value,
            "payload": self.payload.decode("utf-8", "replace"),
            "headers": self.headers,
            "attempts": self.attempts,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
            "run_at": self.run_at,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "failed_at": self.failed_at,
            "unique_key": self.unique_key,
            "recoveries": self.recoveries,
            "worker_id": self.worker_id,
            "last_error": self.last_error,
            "traceback": self.traceback,
            "result": None if self.result is None else self.result.decode("utf-8", "replace"),
            "unreadable": self.unreadable,
            "raw": self.raw,
            "attempt_history": [a.to_dict() for a in self.attempt_history()],
            "progress": None if progress is None else progress.to_dict(),
        }


@dataclass(slots=True, frozen=True)
class Lease:
    """Proof that one worker holds one running job: the fencing token."""

    job_id: str
    token: str


@dataclass(slots=True, frozen=True)
class Routing:
    """Which jobs a worker takes. ``None`` means every value.

    ``queues`` holds names or glob patterns (``account-*``), matched in storage, so queues
    created after the worker started match too.
    """

    queues: tuple[str, ...] | None = None
    priorities: tuple[Priority, ...] | None = None
    tasks: tuple[str, ...] | None = None

    def matches(self, queue: str, priority: Priority, task: str) -> bool:
        """Whether a job with these fields is one this worker runs."""
        from fnmatch import fnmatchcase

        if self.queues is not None and not any(fnmatchcase(queue, q) for q in self.queues):
            return False
        if self.priorities is not None and priority not in self.priorities:
            return False
        return self.tasks is None or task in self.tasks


@dataclass(slots=True, frozen=True)
class Failure:
    """How a running job failed, and what happens next.

    With ``retry_in`` set the job is scheduled again ``retry_in`` seconds after the
    backend's own "now" (its clock, or its server's time); with ``None`` it is dead. A delay,
    never a time: the worker's host clock must not decide when a store that runs on server
    time retries a job.
    """

    error: str
    traceback: str | None = None
    retry_in: float | None = None


@dataclass(slots=True)
class QueueStats:
    """Counts of jobs in one queue at one priority, by state."""

    queue: str
    priority: Priority
    counts: dict[State, int] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class HistoryPoint:
    """Jobs of one queue that finished one attempt in one minute (for throughput charts).

    ``minute`` is the Unix time of the minute's first second (a multiple of 60).
    ``failed`` counts failed attempts, whether or not a retry follows.
    """

    minute: int
    queue: str
    succeeded: int = 0
    failed: int = 0


@dataclass(slots=True)
class JobQuery:
    """A filter for listing jobs, newest first."""

    states: tuple[State, ...] | None = None
    queue: str | None = None
    task: str | None = None
    limit: int = 50
    offset: int = 0


@dataclass(slots=True)
class WorkerInfo:
    """What a live worker reports about itself in the registry."""

    id: str
    host: str
    pid: int
    started_at: float
    last_seen: float = 0.0
    pool: str | None = None
    queues: tuple[str, ...] | None = None
    stats: dict[str, Any] = field(default_factory=dict)
