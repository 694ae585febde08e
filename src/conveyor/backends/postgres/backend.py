"""`PostgresBackend`: the core job-store verbs on PostgreSQL, with psycopg 3.

The backend is composed of parts that share one `Database` (URL, clock, pools, listener,
statement runners): the core verbs here and in `claims`, and the capabilities `limits`,
`scheduling`, `admin`, `telemetry`, `transactions` and `progress`, each in its own module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.rows import dict_row

from conveyor.attempts import KEEP, LOST_ERROR, entry_texts
from conveyor.backends.base import Backend, RecoveryReport, claim_waiting, poison_pill_reason
from conveyor.backends.batching import Batcher
from conveyor.backends.postgres.admin import PostgresAdmin
from conveyor.backends.postgres.claims import claim_now, sleep_until_work
from conveyor.backends.postgres.connection import Target
from conveyor.backends.postgres.database import Database
from conveyor.backends.postgres.limits import PostgresLimits
from conveyor.backends.postgres.progress import PostgresProgress
from conveyor.backends.postgres.records import raw_json, record_or_placeholder
from conveyor.backends.postgres.rows import enqueue_async, enqueue_sync, to_json
from conveyor.backends.postgres.scheduling import PostgresScheduling
from conveyor.backends.postgres.telemetry import PostgresTelemetry
from conveyor.backends.postgres.transactional import PostgresTransactions
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.job import EnqueueResult, Failure, JobRecord, Lease, NewJob, Routing

#: Stands for the recovery count in the poison-pill message until the SQL fills it in.
_MARKER = "987654321"

_Ack = tuple[Lease, bytes | None]


class PostgresBackend(Backend):
    """Jobs in PostgreSQL (`postgresql://user@host/db?schema=conveyor`).

    Async methods share one `psycopg_pool.AsyncConnectionPool` per event loop;
    `enqueue_sync` and `get_sync` use a small sync pool, callable from any thread. Each call
    is one statement on an autocommit connection; concurrent `complete` calls share one
    (`batching.Batcher`). Time is the server's clock, unless a clock is injected (tests),
    whose time is then passed with every statement.
    """

    def __init__(self, url: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.url = url
        self.clock = clock
        #: The connections and statement runners every part of this handle shares.
        self.db = Database(url, clock)
        self._acks: Batcher[_Ack, bool] = Batcher(self._complete_batch, name="conveyor-pg-acks")
        super().__init__(
            limits=PostgresLimits(self.db),
            scheduling=PostgresScheduling(self.db),
            admin=PostgresAdmin(self.db),
            telemetry=PostgresTelemetry(self.db),
            transactions=PostgresTransactions(self.db),
            progress=PostgresProgress(self.db),
        )

    @property
    def target(self) -> Target:
        """The database and options this handle uses, parsed from its URL."""
        return self.db.target

    def clone(self) -> PostgresBackend:
        """A new, unopened handle on the same database, schema and clock."""
        return PostgresBackend(self.url, clock=self.clock)

    def __repr__(self) -> str:
        return f"PostgresBackend({self.target.where})"

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        """Connect, check the schema version (creating an absent schema), start the pool."""
        await self.db.prepare(migrate=False)

    async def migrate(self) -> str:
        """Create or upgrade the schema (forward-only, in one transaction), then open."""
        return await self.db.prepare(migrate=True)

    async def close(self) -> None:
        """Flush queued acks, then close every connection. Safe to call twice."""
        if self.db.closed:
            return
        await self._acks.close()
        await self.db.close()

    # -- producing -----------------------------------------------------------------------
    async def enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """Store jobs atomically, in order, and wake idle workers on commit."""
        if not jobs:
            return []
        async with self.db.conn() as conn:
            return await enqueue_async(conn, self.db.q, self.db.plan(jobs))

    def enqueue_sync(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """`enqueue` from code without an event loop (any thread)."""
        if not jobs:
            return []
        plan = self.db.plan(jobs)
        with self.db.sync_conn() as conn:
            return enqueue_sync(conn, self.db.q, plan)

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
        """Lease up to ``limit`` matching jobs in run order, waiting up to ``wait`` seconds.

        Every try is shielded (`base.claim_waiting`): a claim cancelled in flight gives back
        what it leased before the cancellation goes on, with or without ``wait``.
        """
        return await claim_waiting(
            self,
            lambda: claim_now(self.db, worker_id, routing, limit, lease_seconds),
            lambda seconds: sleep_until_work(self.db, routing, seconds),
            wait,
            limit=limit,
        )

    async def extend(self, leases: Sequence[Lease], lease_seconds: float) -> list[bool]:
        """Push held leases forward; ``False`` for each lease no longer held."""
        if not leases:
            return []
        rows = await self.db.rows(
            "extend",
            {
                "now": self.db.now(),
                "lease": lease_seconds,
                "ids": [x.job_id for x in leases],
                "tokens": [x.token for x in leases],
            },
        )
        held = {r["id"] for r in rows}
        return [x.job_id in held for x in leases]

    async def complete(self, lease: Lease, result: bytes | None) -> bool:
        """Mark the job succeeded (acks of concurrent jobs share one statement)."""
        return await self._acks.submit((lease, result))

    async def _complete_batch(self, acks: list[_Ack]) -> list[bool]:
        rows = await self.db.rows(
            "complete",
            {
                "now": self.db.now(),
                "ids": [lease.job_id for lease, _ in acks],
                "tokens": [lease.token for lease, _ in acks],
                "results": [result for _, result in acks],
            },
        )
        held = {(r["id"], r["token"]) for r in rows}
        return [(lease.job_id, lease.token) in held for lease, _ in acks]

    async def fail(self, lease: Lease, failure: Failure) -> bool:
        """Schedule a retry, or dead-letter, and log the attempt; ``False`` if the lease was lost.

        The log entry's error and traceback are cut in Python (`attempts.entry_texts`); the
        entry itself is built by the statement, with the store's now as its end.
        """
        entry_error, entry_traceback = entry_texts(failure.error, failure.traceback)
        return await self._held(
            "fail",
            lease,
            retry_in=failure.retry_in,
            error=failure.error,
            traceback=failure.traceback,
            entry_error=entry_error,
            entry_traceback=entry_traceback,
            keep=KEEP,
        )

    async def release(self, lease: Lease) -> bool:
        """Back to ready at once, attempt returned; ``False`` if the lease was lost."""
        return await self._held("release", lease)

    async def defer(
        self, lease: Lease, delay: float, headers: dict[str, Any] | None = None
    ) -> bool:
        """Back to wait ``delay`` seconds, attempt returned; ``False`` if the lease was lost."""
        text = None if headers is None else to_json(headers, f"the headers of job {lease.job_id}")
        return await self._held("defer", lease, delay=delay, headers=text)

    async def _held(self, name: str, lease: Lease, **params: Any) -> bool:
        """Run a one-job lease statement that notifies on commit; whether the lease was held."""
        params.update(
            now=self.db.now(), channel=self.db.channel, id=lease.job_id, token=lease.token
        )
        rows = await self.db.rows(name, params)
        return bool(rows[0]["held"])

    async def recover(self, max_recoveries: int) -> RecoveryReport:
        """Expired leases back to ready, or dead once out of recoveries, each logged as lost.

        Safe concurrently.
        """
        rows = await self.db.rows(
            "recover",
            {
                "now": self.db.now(),
                "channel": self.db.channel,
                "max_recoveries": max_recoveries,
                "reason": poison_pill_reason(int(_MARKER)),
                "marker": _MARKER,
                "lost_error": entry_texts(LOST_ERROR, None)[0],
                "keep": KEEP,
            },
        )
        return RecoveryReport(int(rows[0]["recovered"]), int(rows[0]["dead"]))

    # -- reading -------------------------------------------------------------------------
    async def get(self, job_id: str) -> JobRecord | None:
        """One job by id, or ``None``."""
        rows = await self.db.rows("get", {"id": job_id})
        return record_or_placeholder(rows[0]) if rows else None

    def get_sync(self, job_id: str) -> JobRecord | None:
        """`get` from code without an event loop (any thread)."""
        with self.db.sync_conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            raw_json(cur)
            cur.execute(self.db.q["get"], {"id": job_id})
            row = cur.fetchone()
        return None if row is None else record_or_placeholder(row)
