"""PostgreSQL specifics: schema and migrations, SKIP LOCKED claims, LISTEN wake-ups and the
polling fallback, pruning, diagnostics, URLs and clear errors. Against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from fnmatch import fnmatchcase
from typing import Any

import psycopg
import pytest

from conveyor import Conveyor
from conveyor.backends import create_backend
from conveyor.backends.postgres import PostgresBackend, migrations, sql
from conveyor.backends.postgres.claims import sleep_until_work
from conveyor.backends.postgres.connection import parse_url
from conveyor.errors import BackendUnavailable, ConfigError, SchemaVersionError
from conveyor.job import Lease, Routing, State
from conveyor.worker import Worker

from .postgres_support import count_jobs, job, new_schema, pg, pg_base, pg_url, schema, with_options

__all__ = ["pg", "pg_base", "pg_url", "schema"]  # fixtures, imported for pytest

# -- schema and migrations ------------------------------------------------------------------
CATALOG = {
    "columns": """
        SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity
        FROM information_schema.columns WHERE table_schema = %(s)s""",
    "indexes": """
        SELECT tablename, indexname, replace(indexdef, %(q)s, 'S.') FROM pg_indexes
        WHERE schemaname = %(s)s""",
    "constraints": """
        SELECT t.relname, c.conname, c.contype, pg_get_constraintdef(c.oid)
        FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = %(s)s""",
    "tables": """
        SELECT c.relname, c.relkind, c.reloptions FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(s)s""",
    "rows": """SELECT 'meta', key, value FROM {s}.meta
        UNION ALL SELECT 'counters', name, value::text FROM {s}.counters""",
}


def catalog(base: str, name: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything about a schema that a migration could get wrong, in a comparable form."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(base, autocommit=True) as conn:
        for key, text in CATALOG.items():
            query = text.replace("{s}", f'"{name}"')
            rows = conn.execute(query.encode(), {"s": name, "q": f"{name}."}).fetchall()
            out[key] = sorted(tuple(map(str, r)) for r in rows)
    return out


async def build_version(base: str, name: str, version: int) -> None:
    """A schema as an older Conveyor left it: migration steps 1..version only."""
    async with await psycopg.AsyncConnection.connect(base, autocommit=True) as conn:
        await migrations.apply_steps(conn, name, version)


@pytest.mark.parametrize("start", range(1, migrations.SCHEMA_VERSION))
async def test_migrated_schema_equals_a_fresh_one(pg_base: str, start: int) -> None:
    # Given a fresh store and one left at an older version
    fresh, old = new_schema(), new_schema()
    try:
        await (backend := PostgresBackend(with_options(pg_base, schema=fresh))).open()
        await backend.close()
        await build_version(pg_base, old, start)
        assert catalog(pg_base, old) != catalog(pg_base, fresh)  # the test bites

        # When the old one is migrated
        migrated = PostgresBackend(with_options(pg_base, schema=old))
        report = await migrated.migrate()
        await migrated.close()

        # Then columns, types, defaults, indexes, constraints, storage options, the version
        # and the seeded rows are all the same
        assert f"from version {start} to {migrations.SCHEMA_VERSION}" in report
        assert catalog(pg_base, old) == catalog(pg_base, fresh)
    finally:
        with psycopg.connect(pg_base, autocommit=True) as conn:
            for name in (fresh, old):
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'.encode())


async def test_an_older_schema_is_refused_until_migrated(pg_base: str, pg_url: str, schema: str):
    await build_version(pg_base, schema, 1)

    with pytest.raises(SchemaVersionError, match="Run `conveyor migrate`"):
        await PostgresBackend(pg_url).open()

    migrating = PostgresBackend(pg_url)
    assert "from version 1" in await migrating.migrate()
    await migrating.close()
    again = PostgresBackend(pg_url)
    assert "up to date" in await again.migrate()
    await again.close()


async def test_a_newer_schema_is_refused(pg: PostgresBackend, pg_url: str, schema: str):
    with psycopg.connect(pg_url.partition("?")[0], autocommit=True) as conn:
        conn.execute(f"UPDATE \"{schema}\".meta SET value = '99' WHERE key = 'schema_version'")

    with pytest.raises(SchemaVersionError, match="newer Conveyor"):
        await PostgresBackend(pg_url).open()


async def test_concurrent_opens_create_the_schema_once(pg_url: str):
    handles = [PostgresBackend(pg_url) for _ in range(8)]
    await asyncio.gather(*(h.open() for h in handles))
    await asyncio.gather(*(h.close() for h in handles))


# -- claims ----------------------------------------------------------------------------------
@pytest.mark.parametrize("limit", [1, 7])
async def test_concurrent_claimers_never_share_a_job_or_exceed_their_limit(
    pg: PostgresBackend, limit: int
):
    # Given 600 ready jobs and 12 handles (separate pools) claiming at once
    total = 600
    await pg.enqueue([job() for _ in range(total)])
    claimers = [pg.clone() for _ in range(12)]
    for c in claimers:
        await c.open()
    seen: list[str] = []

    async def drain(c: PostgresBackend, worker: str) -> None:
        while True:
            got = await c.claim(worker, Routing(), limit, 30.0)
            assert len(got) <= limit
            if not got:
                return
            seen.extend(j.id for j in got)

    # When they drain the queue
    await asyncio.gather(*(drain(c, f"w{i}") for i, c in enumerate(claimers)))
    for c in claimers:
        await c.close()

    # Then every job was claimed exactly once, under one lease, with one attempt
    assert len(seen) == total and len(set(seen)) == total
    stats = await pg.admin.stats()
    assert sum(s.counts.get(State.RUNNING, 0) for s in stats) == total


async def test_claim_walks_the_ready_index_in_run_order(pg: PostgresBackend):
    await pg.enqueue([job() for _ in range(50)])
    clause, params = sql.routing_clause(Routing(queues=("q", "mail-*")))
    text = sql.splice(pg.db.q["claim"], routing=clause)
    params.update(now=None, limit=5, token="x", lease=1.0, worker_id="w")
    async with pg.db.conn() as conn:
        await conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            r[0] for r in await (await conn.execute(b"EXPLAIN " + text.encode(), params)).fetchall()
        )
        await conn.execute("RESET enable_seqscan")
    # The pick walks jobs_ready in (priority, run_at, seq) order: no sort of the backlog.
    assert "jobs_ready" in plan and "Sort" not in plan, plan
    assert "LockRows" in plan, plan


def test_glob_patterns_match_in_the_database_as_fnmatch_does(pg_base: str):
    names = ["mail", "mail-1", "mailx", "account-7", "a.b", "x[y]", "m", "MAIL", "mail-10"]
    patterns = [
        "mail*",
        "mail-?",
        "account-*",
        "a.b",
        "[am]*",
        "[!m]*",
        "*",
        "mail-[0-9]",
        "x[[]y]",
        "m?il",
        "[",
        "mail-[!1]*",
    ]
    with psycopg.connect(pg_base, autocommit=True) as conn:
        for pattern in patterns:
            regex = sql.glob_to_regex(pattern)
            for name in names:
                row = conn.execute("SELECT %s ~ %s", (name, regex)).fetchone()
                assert row is not None
                assert row[0] == fnmatchcase(name, pattern), (pattern, regex, name)


async def test_leases_use_the_servers_clock(pg: PostgresBackend, pg_base: str):
    await pg.enqueue([job()])
    [claimed] = await pg.claim("w", Routing(), 1, 30.0)
    with psycopg.connect(pg_base) as conn:
        row = conn.execute("SELECT extract(epoch FROM now())::float8").fetchone()
    assert row is not None
    assert claimed.lease_expires_at is not None
    assert abs(claimed.lease_expires_at - (row[0] + 30.0)) < 5.0


# -- waking idle workers ---------------------------------------------------------------------
async def _run_one_job(url: str, *, sleep: float) -> float:
    """Start an idle worker that polls only every ``sleep`` s, enqueue, return the wait."""
    app = Conveyor(url)
    done = asyncio.Event()

    @app.task(name="ping")
    async def ping() -> None:
        done.set()

    worker = Worker(app, concurrency=2, poll_interval=sleep, reaper=False)
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.5)  # the worker is idle, waiting for work
        begin = time.monotonic()
        await ping.enqueue_async()
        await asyncio.wait_for(done.wait(), 20)
        return time.monotonic() - begin
    finally:
        worker.stop()
        await asyncio.wait_for(running, 20)
        await app.aclose()


async def test_listen_wakes_an_idle_worker_long_before_its_poll(pg_url: str):
    # Given a worker that would otherwise sleep 60 s between polls
    waited = await _run_one_job(pg_url, sleep=60.0)

    # Then a NOTIFY woke it: the job ran long before the next poll
    assert waited < 10.0


async def test_without_listen_idle_workers_poll(pg_url: str):
    # Given LISTEN switched off (as behind PgBouncer in transaction mode)
    url = with_options(pg_url, listen="false", poll_interval="0.05")

    # Then the worker still finds the job, by polling the database
    waited = await _run_one_job(url, sleep=60.0)
    assert waited < 10.0


async def test_a_waiting_claim_returns_at_once_when_work_is_already_ready(pg: PostgresBackend):
    [stored] = await pg.enqueue([job()])
    begin = time.monotonic()
    claimed = await asyncio.wait_for(pg.claim("w", Routing(), 1, 30.0, wait=30.0), 5.0)
    assert [j.id for j in claimed] == [stored.id]
    assert time.monotonic() - begin < 5.0


async def test_a_notification_for_another_queue_does_not_end_the_sleep(pg: PostgresBackend):
    other = pg.clone()
    await other.open()
    try:
        sleeper = asyncio.create_task(sleep_until_work(pg.db, Routing(queues=("mail",)), 1.0))
        await asyncio.sleep(0.2)
        await other.enqueue([job(queue="reports")])
        await asyncio.sleep(0.3)
        assert not sleeper.done()
        await other.enqueue([job(queue="mail")])
        await asyncio.wait_for(sleeper, 5.0)
    finally:
        await other.close()


async def test_a_waiting_claim_takes_work_enqueued_for_it_on_another_handle(pg: PostgresBackend):
    other = pg.clone()
    await other.open()
    try:
        # Given a claim for "mail" waiting, and work for another queue arriving first
        claim = asyncio.create_task(pg.claim("w", Routing(queues=("mail",)), 5, 30.0, wait=30.0))
        await asyncio.sleep(0.2)
        await other.enqueue([job(queue="reports")])
        await asyncio.sleep(0.3)
        assert not claim.done()

        # When a mail job is enqueued, the waiting claim takes it (and only it)
        [mail] = await other.enqueue([job(queue="mail")])
        claimed = await asyncio.wait_for(claim, 5.0)
        assert [(j.id, j.state) for j in claimed] == [(mail.id, State.RUNNING)]
    finally:
        await other.close()


@pytest.mark.parametrize("wait", [0.0, 30.0])
async def test_a_claim_cancelled_in_flight_gives_back_what_it_leased(
    pg: PostgresBackend, pg_base: str, schema: str, wait: float, monkeypatch: pytest.MonkeyPatch
):
    # Given a ready job, and answers that come back slowly: the claim's statement has
    # committed (the job is leased) before its caller hears of it
    [stored] = await pg.enqueue([job()])
    real_conn, committed, answer = pg.db.conn, asyncio.Event(), asyncio.Event()

    @contextlib.asynccontextmanager
    async def slow_answer() -> AsyncIterator[Any]:
        async with real_conn() as conn:
            yield conn
        committed.set()
        await answer.wait()

    monkeypatch.setattr(pg.db, "conn", slow_answer)
    claim = asyncio.create_task(pg.claim("w", Routing(), 1, 300.0, wait=wait))
    await asyncio.wait_for(committed.wait(), 10.0)
    assert count_jobs(pg_base, schema, "state = 'running'") == 1

    # When the claim is cancelled then, and only then does its answer arrive
    claim.cancel()
    await asyncio.sleep(0)
    answer.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(claim, 15.0)

    # Then the job it leased was given back: ready, its attempt returned, no lease
    record = await pg.get(stored.id)
    assert record is not None
    assert (record.state, record.attempts, record.lease_token) == (State.READY, 0, None)
    assert count_jobs(pg_base, schema, "state = 'running'") == 0


async def test_a_claim_cancelled_while_it_waits_leaves_no_job_running(
    pg: PostgresBackend, pg_base: str, schema: str
):
    other = pg.clone()
    await other.open()
    try:
        # Given a claim waiting for work that has not come
        claim = asyncio.create_task(pg.claim("w", Routing(), 5, 300.0, wait=30.0))
        await asyncio.sleep(0.3)
        assert not claim.done()

        # When it is cancelled, and then work arrives
        claim.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(claim, 15.0)
        [stored] = await other.enqueue([job()])
        await asyncio.sleep(0.3)  # room for a stray claim to take it, if one were left

        # Then nothing took it: it is ready for the next claim, with its first attempt
        assert count_jobs(pg_base, schema, "state = 'running'") == 0
        [claimed] = await other.claim("w2", Routing(), 5, 30.0)
        assert (claimed.id, claimed.attempts) == (stored.id, 1)
    finally:
        await other.close()


# -- pruning ---------------------------------------------------------------------------------
async def test_purge_deletes_old_finished_jobs_in_batches(
    pg: PostgresBackend, pg_base: str, schema: str, monkeypatch: pytest.MonkeyPatch
):
    from conveyor.backends.postgres import admin

    monkeypatch.setattr(admin, "PURGE_BATCH", 7)
    await pg.enqueue([job() for _ in range(40)])
    for j in await pg.claim("w", Routing(), 30, 30.0):
        assert await pg.complete(Lease(j.id, j.lease_token or ""), b"1")

    assert await pg.admin.purge([State.SUCCEEDED], older_than=3600) == 0
    assert await pg.admin.purge([State.SUCCEEDED, State.READY], older_than=0) == 30
    assert count_jobs(pg_base, schema) == 10
    assert count_jobs(pg_base, schema, "state = 'ready'") == 10


async def test_pruning_uses_the_finished_index(pg: PostgresBackend):
    async with pg.db.conn() as conn:
        await conn.execute("SET enable_seqscan = off")
        cur = await conn.execute(
            b"EXPLAIN " + pg.db.q["purge_before"].encode(),
            {"states": ["succeeded"], "now": None, "older_than": 60.0, "batch": 10},
        )
        plan = "\n".join(r[0] for r in await cur.fetchall())
        await conn.execute("RESET enable_seqscan")
    assert "jobs_finished" in plan, plan


# -- diagnostics -----------------------------------------------------------------------------
async def test_diagnostics_report_a_long_open_transaction(pg_url: str, pg_base: str):
    backend = PostgresBackend(with_options(pg_url, long_transaction="0.2"))
    await backend.open()
    holder = await psycopg.AsyncConnection.connect(pg_base)
    try:
        assert not [d for d in await backend.admin.diagnostics() if "open for" in d]
        # Given a session that holds a transaction (and so the xmin horizon) open
        await holder.execute("SELECT txid_current()")
        await asyncio.sleep(0.5)

        # Then the backend reports it, naming the session's pid
        lines = await backend.admin.diagnostics()
        assert any(f"pid {holder.info.backend_pid}" in d and "VACUUM" in d for d in lines), lines
    finally:
        await holder.close()
        await backend.close()


# -- URLs and errors -------------------------------------------------------------------------
def test_url_options_are_taken_out_of_the_libpq_url() -> None:
    target = parse_url(
        "postgresql://u:secret@db:5433/app?schema=jobs&listen=false&pool_size=3"
        "&sslmode=require&connect_timeout=2"
    )
    assert (target.schema, target.listen, target.pool_size) == ("jobs", False, 3)
    assert "sslmode=require" in target.conninfo and "connect_timeout=2" in target.conninfo
    assert "schema" not in target.conninfo and "secret" not in target.where
    assert target.where == "db:5433/app (schema jobs)"


async def test_libpq_options_reach_the_server_as_written(pg_base: str) -> None:
    # Given a libpq option with an escaped space and a literal "+" (libpq URI rules)
    target = parse_url(
        with_options(pg_base, options="-c%20statement_timeout%3D4321", application_name="a+b%20c")
    )
    # When we connect with the conninfo Conveyor builds
    async with await psycopg.AsyncConnection.connect(target.conninfo) as conn:
        cur = await conn.execute(
            "SELECT current_setting('statement_timeout'), current_setting('application_name')"
        )
        # Then the server got them unchanged
        assert await cur.fetchone() == ("4321ms", "a+b c")


@pytest.mark.parametrize("option", ["schema=Bad-Name", "listen=maybe", "pool_size=0"])
def test_bad_url_options_are_config_errors(option: str) -> None:
    with pytest.raises(ConfigError):
        create_backend(f"postgresql://localhost/db?{option}")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_server_that_is_down_is_reported_quickly() -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/x?connect_timeout=2"
    app = Conveyor(url)

    @app.task(name="t")
    def t() -> None: ...

    for attempt in (app.open(), t.enqueue_async()):
        begin = time.monotonic()
        with pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1:\d+/x .*unavailable"):
            await attempt
        assert time.monotonic() - begin < 5.0
    begin = time.monotonic()
    with pytest.raises(BackendUnavailable):
        await asyncio.to_thread(t.enqueue)
    assert time.monotonic() - begin < 5.0


async def test_enqueue_statement_gets_a_generic_plan(
    pg: PostgresBackend, pg_base: str, schema: str
) -> None:
    # Planning the enqueue afresh on every call cost more than running it: the statement
    # must stay simple enough that the plan cache settles on one generic plan. (The claim
    # must not: its generic plan scans the whole table, so no session-wide setting.)
    from conveyor.backends.postgres.rows import EnqueuePlan

    text = pg.db.q["enqueue"]
    with psycopg.connect(pg_base, autocommit=True, prepare_threshold=1) as conn:
        for _ in range(20):
            conn.execute(text, EnqueuePlan([job()], None, None).params()).fetchall()
        [(generic, custom)] = conn.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
        ).fetchall()
    assert generic >= 10, (generic, custom)
    assert count_jobs(pg_base, schema) == 20
