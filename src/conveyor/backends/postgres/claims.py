"""Claiming on PostgreSQL: leasing jobs in run order, and sleeping until work may be ready.

`claim_now` is one claim: ``FOR UPDATE SKIP LOCKED`` over the ready index, scheduled jobs
that fell due made ready first, and rows that cannot be read quarantined (dead-lettered
with their stored content) so that an empty answer always means "no work".
`sleep_until_work` is what a waiting claim does between tries: it wakes on NOTIFY within
milliseconds of a commit, when a scheduled job falls due, or, without LISTEN, every
``poll_interval``. `PostgresBackend.claim` joins the two with `base.claim_waiting`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

import psycopg
from psycopg.rows import dict_row

from conveyor.backends.postgres import sql
from conveyor.backends.postgres.database import Database
from conveyor.backends.postgres.records import decode_claimed, raw_json
from conveyor.backends.postgres.rows import Row, run_order
from conveyor.backends.unreadable import UnreadableRecord
from conveyor.job import JobRecord, Routing

log = logging.getLogger("conveyor.postgres")

#: Claim rounds one call may spend quarantining unreadable rows before it answers empty.
QUARANTINE_ROUNDS = 10


async def claim_now(
    db: Database, worker_id: str, routing: Routing, limit: int, lease_seconds: float
) -> list[JobRecord]:
    """Lease up to ``limit`` matching jobs, in run order (due scheduled jobs included)."""
    now = db.now()
    if limit <= 0:
        await db.rows("promote_due", {"now": now})
        return []
    clause, params = sql.routing_clause(routing)
    statement = sql.splice(db.q["claim"], routing=clause)
    params.update(
        now=now,
        limit=limit,
        token=secrets.token_hex(16),
        lease=lease_seconds,
        worker_id=worker_id,
    )
    records: list[JobRecord] = []
    rows: list[Row] = []
    async with db.conn() as conn, conn.cursor(row_factory=dict_row) as cur:
        raw_json(cur)
        # Each round that finds only unreadable rows quarantines them and claims again:
        # an empty answer must mean "no work" (a burst worker stops on it), not "the
        # first rows in line were damaged".
        for _ in range(QUARANTINE_ROUNDS):
            rows = await _claim_rows(db, cur, statement, params)
            records, damaged = decode_claimed(rows)
            if not damaged:
                break
            if not await _quarantine(db, cur, damaged, params["token"]) or records:
                break
    return run_order(records, {r["id"]: r["seq"] for r in rows if r["id"] is not None})


async def _claim_rows(
    db: Database, cur: psycopg.AsyncCursor[Row], statement: str, params: dict[str, Any]
) -> list[Row]:
    for _ in range(3):
        await cur.execute(statement, params)
        rows = await cur.fetchall()
        if not rows[0]["due"]:
            return rows
        # A scheduled job fell due: make it ready so it takes its place in the order.
        await cur.execute(db.q["promote_due"], {"now": params["now"]})
    return []  # jobs keep falling due this instant; the next claim takes them


async def _quarantine(
    db: Database, cur: psycopg.AsyncCursor[Row], damaged: list[UnreadableRecord], token: str
) -> bool:
    """Dead-letter claimed jobs that cannot be read, keeping their stored content.

    The claim has committed: a failure here is logged, never raised, so the jobs that
    could be read still run. A job left leased by such a failure is recovered once its
    lease expires and quarantined by the next claim that takes it.
    """
    for exc in damaged:
        log.error("quarantining job %s: %s", exc.job_id, exc)
    try:
        await cur.execute(
            db.q["quarantine"],
            {
                "now": db.now(),
                "token": token,
                "ids": [exc.job_id for exc in damaged],
                "errors": [str(exc) for exc in damaged],
            },
        )
    except psycopg.Error as exc:
        log.warning("could not quarantine %d unreadable job(s): %s", len(damaged), exc)
        return False
    return True


async def sleep_until_work(db: Database, routing: Routing, timeout: float) -> None:
    """Sleep until matching work may be ready, or ``timeout`` seconds pass.

    Returns at once when matching work is ready or due; jobs of paused queues do not count
    (`PostgresAdmin.resume_queue` sends the NOTIFY that wakes the sleep).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, timeout)
    listener = await db.listener()
    # Listen and register before asking: a commit after the question still wakes us.
    waiter = listener.add(routing) if await listener.start() else None
    clause, params = sql.routing_clause(routing)
    probe = sql.splice(db.q["probe"], routing=clause)
    try:
        while True:
            [row] = await db.rows("probe", {**params, "now": db.now()}, probe)
            due_in = row["due_in"]
            if row["ready"] or (due_in is not None and due_in <= 0):
                return
            left = deadline - loop.time()
            if due_in is not None:
                left = min(left, due_in)
            if left <= 0:
                return
            if waiter is not None and listener.listening:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.event.wait(), left)
                return
            await asyncio.sleep(min(db.target.poll_interval, left))
    finally:
        if waiter is not None:
            listener.remove(waiter)
