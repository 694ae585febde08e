"""Between Python and the tables: the enqueue statement's bookkeeping and its JSON.

Rows become records in `records`.

`enqueue_sync` and `enqueue_async` are shared by the backend's own connections, the
scheduler's tick and transactional enqueue on a caller's connection, so every road stores a
job the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg

from conveyor.backends.postgres.sql import Queries
from conveyor.errors import BackendError, SerializationError
from conveyor.job import EnqueueResult, JobRecord, NewJob

Row = dict[str, Any]

#: How often one enqueue asks again for the holder of a unique key it could not see (the
#: holder committed after the statement's snapshot, or finished in between).
MAX_ROUNDS = 5


def to_json(value: Any, what: str) -> str:
    """Strict JSON text (no NaN), with an error naming ``what`` when it cannot be stored."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"{what} cannot be stored as JSON: {exc}") from exc


def run_order(records: list[JobRecord], seqs: dict[str, int]) -> list[JobRecord]:
    """Records in claim order: priority, then run_at, then enqueue order."""
    return sorted(records, key=lambda j: (j.priority, j.run_at, seqs[j.id]))


class EnqueuePlan:
    """One enqueue call: the statement's parameters, and the reading of its answer.

    `params` covers the jobs still unresolved; `absorb` reads the rows back and returns
    whether every job now has a result. A job whose unique key was held by a transaction
    that committed after the statement began (so its snapshot cannot name the holder) stays
    unresolved, and the caller runs the statement again for it.
    """

    def __init__(self, jobs: Sequence[NewJob], now: float | None, channel: str | None) -> None:
        self.jobs = list(jobs)
        self.now = now
        self.channel = channel
        self.results: list[EnqueueResult | None] = [None] * len(self.jobs)
        self.pending = list(range(len(self.jobs)))
        self.rounds = 0
        self._first_holder: dict[str, str] = {}  # keys the last insert stored, by key
        self._headers = [
            to_json(j.headers, f"the headers of job {j.id} ({j.task})") for j in self.jobs
        ]

    def params(self) -> dict[str, Any]:
        """Parameters of the ``enqueue`` statement for the unresolved jobs."""
        self.rounds += 1
        if self.rounds > MAX_ROUNDS:
            keys = sorted({str(self.jobs[i].unique_key) for i in self.pending})
            raise BackendError(
                f"could not store or find the job holding unique key(s) {keys} after "
                f"{MAX_ROUNDS} tries: other jobs with these keys keep starting and finishing. "
                "If you enqueue inside a REPEATABLE READ or SERIALIZABLE transaction, its "
                "snapshot cannot see the holder: use READ COMMITTED, or retry the transaction"
            )
        jobs = [self.jobs[i] for i in self.pending]
        return {
            "now": self.now,
            "channel": self.channel,
            "ids": [j.id for j in jobs],
            "tasks": [j.task for j in jobs],
            "queues": [j.queue for j in jobs],
            "priorities": [int(j.priority) for j in jobs],
            "payloads": [j.payload for j in jobs],
            "headers": [self._headers[i] for i in self.pending],
            "max_retries": [j.max_retries for j in jobs],
            "timeouts": [float(j.timeout) for j in jobs],
            "run_ats": [None if j.run_at is None else float(j.run_at) for j in jobs],
            "delays": [None if j.delay is None else float(j.delay) for j in jobs],
            "unique_keys": [j.unique_key for j in jobs],
        }

    def absorb(self, rows: Sequence[tuple[Any, ...]]) -> list[str]:
        """Read the ``(id, ...)`` rows the insert stored; the keys whose holder to look up.

        A job the insert skipped has a unique key some active job holds: either an earlier
        job of this very batch (resolved here) or another job (`settle` names it).
        """
        stored = {str(row[0]) for row in rows}
        self._first_holder = {}
        lookup: list[str] = []
        for index in self.pending:
            job = self.jobs[index]
            key = job.unique_key
            if job.id in stored:
                self.results[index] = EnqueueResult(job.id)
                if key is not None:
                    self._first_holder.setdefault(key, job.id)
            elif key is None:
                raise BackendError(f"job {job.id} ({job.task}) was neither stored nor skipped")
        for index in self.pending:
            key = self.jobs[index].unique_key
            if self.results[index] is None and key is not None:
                if key in self._first_holder:
                    self.results[index] = EnqueueResult(self._first_holder[key], existing=True)
                elif key not in lookup:
                    lookup.append(key)
        return lookup

    def settle(self, holders: Sequence[tuple[Any, ...]] = ()) -> bool:
        """Read ``(unique_key, id)`` holder rows; ``True`` once every job has a result.

        A job whose key has no visible holder (it finished since the insert, or committed
        after a REPEATABLE READ snapshot began) stays pending for another round.
        """
        held = {str(key): str(job_id) for key, job_id in holders}
        retry: list[int] = []
        for index in self.pending:
            if self.results[index] is not None:
                continue
            key = self.jobs[index].unique_key
            if key is not None and key in held:
                self.results[index] = EnqueueResult(held[key], existing=True)
            else:
                retry.append(index)
        self.pending = retry
        return not retry

    def done(self) -> list[EnqueueResult]:
        """One result per job, in order."""
        out = [r for r in self.results if r is not None]
        assert len(out) == len(self.jobs)
        return out


def enqueue_sync(
    conn: psycopg.Connection[Any], q: Queries, plan: EnqueuePlan
) -> list[EnqueueResult]:
    """Run ``plan`` on ``conn`` (inside its transaction, if one is open) to the end."""
    with conn.cursor() as cur:
        while True:
            cur.execute(q["enqueue"], plan.params())
            holders: list[tuple[Any, ...]] = []
            keys = plan.absorb(cur.fetchall())
            if keys:
                cur.execute(q["unique_holders"], {"keys": keys})
                holders = cur.fetchall()
            if plan.settle(holders):
                return plan.done()


async def enqueue_async(
    conn: psycopg.AsyncConnection[Any], q: Queries, plan: EnqueuePlan
) -> list[EnqueueResult]:
    """`enqueue_sync` on an async connection."""
    async with conn.cursor() as cur:
        while True:
            await cur.execute(q["enqueue"], plan.params())
            holders: list[tuple[Any, ...]] = []
            keys = plan.absorb(await cur.fetchall())
            if keys:
                await cur.execute(q["unique_holders"], {"keys": keys})
                holders = await cur.fetchall()
            if plan.settle(holders):
                return plan.done()
