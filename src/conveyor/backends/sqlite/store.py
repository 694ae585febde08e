"""The core job verbs as plain synchronous calls on one SQLite connection.

`SqliteBackend` runs these through its `Runner`: on the handle's thread (async methods) or
under a lock (sync methods). Each public method is one transaction, so each is atomic as the
protocol requires; `together` lets several writes share one transaction (and so one commit).
`write` and `read` are also how the capabilities (`admin`, `telemetry`, `scheduling`,
`limits`) run their own queries on this connection.
"""

from __future__ import annotations

import logging
import math
import secrets
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from conveyor.attempts import LOST_ERROR, append_entry, log_entry
from conveyor.backends.base import RecoveryReport, poison_pill_reason
from conveyor.backends.sqlite import connection, rows, sql
from conveyor.backends.unreadable import UnreadableRecord
from conveyor.clock import Clock
from conveyor.job import (
    EnqueueResult,
    Failure,
    JobRecord,
    Lease,
    NewJob,
    Routing,
    State,
)

T = TypeVar("T")

log = logging.getLogger("conveyor.backends.sqlite")


def _float(value: float | None) -> float | None:
    # RETURNING hands back REAL columns holding whole numbers as ints; give floats back.
    return None if value is None else float(value)


def _claim_order(row: sqlite3.Row) -> tuple[float, float, int]:
    # A damaged priority or run_at (text) must not break the sort: it goes last.
    priority, run_at = rows.number_or_none(row["priority"]), rows.number_or_none(row["run_at"])
    return (
        math.inf if priority is None else priority,
        math.inf if run_at is None else run_at,
        row["seq"],
    )


def _with_attempt(
    row: sqlite3.Row, outcome: str, now: float, error: str | None, traceback: str | None = None
) -> str:
    """The row's attempt log with the attempt it is running now added as ``outcome``.

    Damage costs nothing here: a log that is not text starts afresh (`append_entry` does the
    same for one that is not a JSON array), a damaged field is left out of the entry.
    """
    number = rows.number_or_none(row["attempts"])
    worker_id, stored = row["worker_id"], row["attempt_log"]
    entry = log_entry(
        0 if number is None else int(number),
        outcome,
        worker_id if rows.is_text(worker_id) else None,
        rows.number_or_none(row["started_at"]),
        now,
        error,
        traceback,
    )
    return append_entry(stored if rows.is_text(stored) else None, entry)


class Store:
    """One connection, and every operation as one transaction on it."""

    def __init__(self, conn: sqlite3.Connection, clock: Clock, path: Path) -> None:
        self.conn = conn
        self.clock = clock
        self.path = path

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def write(self, fn: Callable[[], T]) -> T:
        """``fn`` in one ``BEGIN IMMEDIATE`` transaction, or inside the one already open."""
        if self.conn.in_transaction:
            return fn()  # one of several writes `together` commits: it owns the transaction
        try:
            return connection.write(self.conn, fn)
        except sqlite3.Error as exc:
            raise connection.translate(exc, self.path) from exc

    def together(self, writes: Sequence[Callable[[], T]]) -> list[T]:
        """Run several writes in one transaction (one commit), in order; all or none.

        Each write is one of this class's write methods, which then runs inside this
        transaction instead of opening its own. `group_commit` uses it.
        """
        return self.write(lambda: [fn() for fn in writes])

    def _autocommit(self, fn: Callable[[], T]) -> T:
        """``fn``, one statement that is its own transaction (no BEGIN ... COMMIT)."""
        try:
            return connection.retrying(fn)
        except sqlite3.Error as exc:
            raise connection.translate(exc, self.path) from exc

    def read(self, fn: Callable[[], T]) -> T:
        """``fn``, reads only, retried while the file is locked."""
        try:
            return connection.retrying(fn)
        except sqlite3.Error as exc:
            raise connection.translate(exc, self.path) from exc

    def _exec(self, name: str, params: dict[str, Any] | None = None) -> sqlite3.Cursor:
        return self.conn.execute(sql.query(name), params or {})

    def _count(self, name: str, n: int) -> None:
        if n:
            self._exec("bump_counter", {"name": name, "n": n})

    # -- producing -----------------------------------------------------------------------
    def enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """Store jobs in order; a held unique key returns the job holding it."""
        if len(jobs) == 1 and jobs[0].unique_key is None and not self.conn.in_transaction:
            # Nothing to read first, so the one INSERT can be its own transaction (SQLite's
            # autocommit, just as durable): it saves the BEGIN and COMMIT round trips. It
            # takes the write lock as it starts, so it waits on a busy file like BEGIN
            # IMMEDIATE does.
            new = jobs[0]
            return self._autocommit(lambda: [self._insert(new, self.clock.now())])

        def txn() -> list[EnqueueResult]:
            now = self.clock.now()
            out: list[EnqueueResult] = []
            for new in jobs:
                if new.unique_key is not None:
                    row = self.holder_of(new.unique_key)
                    if row is not None:
                        out.append(EnqueueResult(rows.name_of(row["id"]), existing=True))
                        continue
                out.append(self._insert(new, now))
            return out

        return self.write(txn)

    def holder_of(self, unique_key: str) -> sqlite3.Row | None:
        """The active job holding ``unique_key``, if any; call inside a write transaction."""
        row: sqlite3.Row | None = self._exec(
            "active_with_key", {"unique_key": unique_key}
        ).fetchone()
        return row

    def _insert(self, new: NewJob, now: float) -> EnqueueResult:
        run_at = new.due(now)
        headers = (
            rows.to_json(new.headers, f"the headers of job {new.id} ({new.task})")
            if new.headers
            else "{}"
        )
        self._exec(
            "insert_job",
            {
                "id": new.id,
                "task": new.task,
                "queue": new.queue,
                "priority": int(new.priority),
                "state": (State.SCHEDULED if run_at > now else State.READY).value,
                "payload": new.payload,
                "headers": headers,
                "max_retries": new.max_retries,
                "timeout": new.timeout,
                "run_at": run_at,
                "now": now,
                "unique_key": new.unique_key,
            },
        )
        return EnqueueResult(new.id)

    # -- working -------------------------------------------------------------------------
    def claim(
        self, worker_id: str, routing: Routing, limit: int, lease_seconds: float
    ) -> list[JobRecord]:
        """Promote due jobs, then take up to ``limit`` matching ready jobs under a lease."""
        clause, params = sql.routing_clause(routing)
        statement = sql.splice(sql.query("claim"), routing=clause)

        def txn() -> list[JobRecord]:
            now = self.clock.now()
            self._exec("promote_due", {"now": now})
            self._exec("promote_damaged", {"now": now})
            if limit <= 0:
                return []
            # One token per claim: a lease is the pair (job id, token), so each job is
            # still fenced on its own, and one UPDATE ... RETURNING takes the whole batch.
            params.update(
                token=secrets.token_hex(16),
                expires=now + lease_seconds,
                worker_id=worker_id,
                now=now,
                limit=limit,
            )
            claimed = self.conn.execute(statement, params).fetchall()
            claimed.sort(key=_claim_order)
            return self._readable(claimed, now)

        return self.write(txn)

    def _readable(self, claimed: list[sqlite3.Row], now: float) -> list[JobRecord]:
        """The claimed rows that decode, as records; the others are quarantined (dead).

        One damaged row costs its own job only: it leaves the claim, in this same
        transaction, with its damaged columns untouched for ``conveyor jobs show``.
        """
        out: list[JobRecord] = []
        for row in claimed:
            try:
                out.append(rows.job_record(row))
            except UnreadableRecord as problem:
                self._exec("quarantine", {"seq": row["seq"], "error": str(problem), "now": now})
                log.error("job %s quarantined: %s", problem.job_id, problem)
        return out

    def _held(self, name: str, lease: Lease, **params: Any) -> bool:
        """Run a lease-conditional update; count it as fenced when the lease is not held."""
        cursor = self._exec(name, {"id": lease.job_id, "token": lease.token, **params})
        if cursor.rowcount == 0:
            self._count("fenced", 1)
            return False
        return True

    def extend(self, leases: Sequence[Lease], lease_seconds: float) -> list[bool]:
        """Push each held lease's expiry to now + ``lease_seconds``."""

        def txn() -> list[bool]:
            expires = self.clock.now() + lease_seconds
            return [self._held("extend", lease, expires=expires) for lease in leases]

        return self.write(txn)

    def complete(self, lease: Lease, result: bytes | None) -> bool:
        """Mark a held job succeeded with its result."""
        return self.write(
            lambda: self._held("complete", lease, result=result, now=self.clock.now())
        )

    def fail(self, lease: Lease, failure: Failure) -> bool:
        """Schedule a held job's retry ``retry_in`` seconds from now, or dead-letter it.

        The attempt is added to the job's log (``failed`` or ``dead``) by the same UPDATE.
        """

        def txn() -> bool:
            held = self._exec("held_for_log", {"id": lease.job_id, "token": lease.token})
            row = held.fetchone()
            if row is None:
                self._count("fenced", 1)
                return False
            now = self.clock.now()
            outcome = "dead" if failure.retry_in is None else "failed"
            params = {
                "error": failure.error,
                "traceback": failure.traceback,
                "log": _with_attempt(row, outcome, now, failure.error, failure.traceback),
            }
            if failure.retry_in is None:
                return self._held("fail_dead", lease, now=now, **params)
            run_at = now + failure.retry_in
            return self._held("fail_retry", lease, now=now, run_at=run_at, **params)

        return self.write(txn)

    def release(self, lease: Lease) -> bool:
        """Give a held job back to ready, returning its attempt."""
        return self.write(lambda: self._held("release", lease, now=self.clock.now()))

    def defer(self, lease: Lease, delay: float, headers: dict[str, Any] | None) -> bool:
        """Put a held job back to wait ``delay`` seconds, returning its attempt."""
        stored = (
            None if headers is None else rows.to_json(headers, f"the headers of job {lease.job_id}")
        )

        def txn() -> bool:
            now = self.clock.now()
            state = State.SCHEDULED if delay > 0 else State.READY
            return self._held(
                "defer",
                lease,
                state=state.value,
                run_at=now + max(0.0, delay),
                headers=stored,
                now=now,
            )

        return self.write(txn)

    def recover(self, max_recoveries: int) -> RecoveryReport:
        """Return expired leases to ready, or dead once a job is out of recoveries.

        Each expired run is added to its job's log as a ``lost`` attempt by the same UPDATE.
        """

        def txn() -> RecoveryReport:
            now = self.clock.now()
            recovered = dead = 0
            for row in self._exec("expired_leases", {"now": now}).fetchall():
                if row["damaged"]:
                    log.error(
                        "job %s has a lease expiry that is not a number (%r); recovering it "
                        "as expired",
                        rows.shown(row["id"]),
                        rows.original(row["lease_expires_at"]),
                    )
                # A damaged count starts again from 0; SQL's `recoveries + 1` agrees.
                recoveries = int(rows.number_or_none(row["recoveries"]) or 0) + 1
                params = {"seq": row["seq"], "now": now}
                params["log"] = _with_attempt(row, "lost", now, LOST_ERROR)
                if recoveries >= max_recoveries:
                    error = poison_pill_reason(recoveries)
                    self._exec("recover_dead", {**params, "error": error})
                    dead += 1
                else:
                    self._exec("recover_ready", params)
                    recovered += 1
            self._count("recovered", recovered)
            self._count("poisoned", dead)
            return RecoveryReport(recovered, dead)

        return self.write(txn)

    def probe(self, statement: str, params: dict[str, Any]) -> tuple[bool, float | None]:
        """Whether matching work is ready, and when the next matching scheduled job is due."""
        row = self.read(lambda: self.conn.execute(statement, params).fetchone())
        next_due = row["next_due"]
        if next_due is not None and rows.number_or_none(next_due) is None:
            # A damaged run_at (text): the next claim promotes and quarantines it, so it
            # counts as due now rather than never.
            return bool(row["ready"]), self.clock.now()
        return bool(row["ready"]), _float(next_due)

    def data_version(self) -> int:
        """A number that changes when another connection commits to the file."""
        return int(self.read(lambda: self._exec("data_version").fetchone()[0]))

    # -- reading -------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        """One job by id."""
        row = self.read(lambda: self._exec("get", {"id": job_id}).fetchone())
        return None if row is None else rows.job_or_placeholder(row)
