"""PostgreSQL specifics of limits and operations: row-locked windows and slots under real
concurrency on the server's clock, history batches, and the claim's paused-queue check."""

from __future__ import annotations

import asyncio

import psycopg

from conveyor.backends.postgres import PostgresBackend, sql
from conveyor.job import HistoryPoint, Routing

from .postgres_support import job, pg, pg_base, pg_url, schema

__all__ = ["pg", "pg_base", "pg_url", "schema"]  # fixtures, imported for pytest


async def _handles(pg: PostgresBackend, n: int) -> list[PostgresBackend]:
    handles = [pg.clone() for _ in range(n)]
    await asyncio.gather(*(h.open() for h in handles))
    return handles


async def test_many_pools_never_over_grant_a_window(pg: PostgresBackend) -> None:
    # Given 8 handles (8 pools, so truly concurrent statements) on the server's clock
    handles = await _handles(pg, 8)
    try:
        # When 160 starts are asked for at once from a window of 25 per hour
        waits = await asyncio.gather(
            *(h.limits.rate_acquire("api", 25, 3600.0) for h in handles for _ in range(20))
        )
    finally:
        await asyncio.gather(*(h.close() for h in handles))

    # Then exactly 25 are granted, and every refusal says to wait about an hour
    assert sum(1 for w in waits if w == 0.0) == 25
    assert all(3500.0 < w <= 3600.0 for w in waits if w != 0.0)


async def test_many_pools_never_over_grant_slots_and_release_leaves_no_rows(
    pg: PostgresBackend, pg_base: str, schema: str
) -> None:
    handles = await _handles(pg, 8)
    try:
        got = await asyncio.gather(
            *(
                h.limits.slot_acquire("account:1", f"job-{i}-{k}", 4, 30.0)
                for i, h in enumerate(handles)
                for k in range(6)
            )
        )
        assert sum(got) == 4
        holders = [f"job-{i}-{k}" for i in range(8) for k in range(6) if got[i * 6 + k]]
        # When every holder (and every non-holder) lets go
        await asyncio.gather(
            *(
                h.limits.slot_release("account:1", f"job-{i}-{k}")
                for i, h in enumerate(handles)
                for k in range(6)
            )
        )
    finally:
        await asyncio.gather(*(h.close() for h in handles))

    # Then the key's row is gone, so per-account keys do not pile up
    assert len(holders) == 4
    with psycopg.connect(pg_base, autocommit=True) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{schema}".slots').fetchone()
    assert row == (0,)
    assert await pg.limits.slot_acquire("account:1", "late", 1, 30.0)


async def test_one_history_batch_may_repeat_a_minute_and_writers_do_not_deadlock(
    pg: PostgresBackend,
) -> None:
    m = 1_800_000_000 // 60 * 60
    # Given batches that repeat a key and name the same rows in opposite orders
    forward = [HistoryPoint(m + 60 * i, q, 1, 0) for i in range(5) for q in ("a", "b")]
    batches = [forward + forward[:1], list(reversed(forward))] * 8
    handles = await _handles(pg, 4)
    try:
        await asyncio.gather(
            *(handles[i % 4].telemetry.record_history(b, keep=1e12) for i, b in enumerate(batches))
        )
    finally:
        await asyncio.gather(*(h.close() for h in handles))

    # Then every point was summed into its minute
    points = await pg.telemetry.history(since=0)
    assert [(p.minute, p.queue) for p in points] == [(p.minute, p.queue) for p in forward]
    assert points[0].succeeded == 8 * 3
    assert all(p.succeeded == 16 for p in points[1:])


async def test_the_paused_check_is_a_hashed_lookup_on_the_ready_walk(pg: PostgresBackend) -> None:
    await pg.enqueue([job() for _ in range(50)])
    await pg.admin.pause_queue("mail")
    clause, params = sql.routing_clause(Routing())
    text = sql.splice(pg.db.q["claim"], routing=clause)
    params.update(now=None, limit=5, token="x", lease=1.0, worker_id="w")
    async with pg.db.conn() as conn:
        await conn.execute("SET enable_seqscan = off")
        cur = await conn.execute(b"EXPLAIN " + text.encode(), params)
        plan = "\n".join(r[0] for r in await cur.fetchall())
        await conn.execute("RESET enable_seqscan")
    # A hashed subplan, built once per statement: no join, no per-row probe, no sort.
    assert "jobs_ready" in plan and "hashed SubPlan" in plan and "Sort" not in plan, plan
