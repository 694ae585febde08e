"""Transactional enqueue on PostgreSQL: a job exists only if the caller's transaction commits.

Covers a psycopg sync and async connection and SQLAlchemy's Session, Connection and
AsyncSession, each with commit and rollback; plus unique keys under concurrency.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from conveyor import ConfigError, Conveyor, Task
from conveyor.backends.postgres import PostgresBackend
from conveyor.job import Routing

from .postgres_support import count_jobs, job, pg, pg_base, pg_url, schema

__all__ = ["pg", "pg_base", "pg_url", "schema"]  # fixtures, imported for pytest


@pytest.fixture
def app(pg_url: str) -> Iterator[Conveyor]:
    """An app on this test's schema, with the schema created."""
    app = Conveyor(pg_url)
    asyncio.run(app.open())
    yield app
    app.close()


@pytest.fixture
def send(app: Conveyor) -> Task[[str], None]:
    @app.task(name="send")
    def send(to: str) -> None: ...

    return send


def sa_url(base: str) -> str:
    return base.replace("postgresql://", "postgresql+psycopg://", 1)


def test_psycopg_connection_commit_and_rollback(
    send: Task[[str], None], pg_base: str, schema: str
) -> None:
    with psycopg.connect(pg_base) as conn:
        # Given a job enqueued inside an open transaction
        handle = send.options(connection=conn).enqueue("a@example.com")
        # Then nobody else sees it before the commit,
        assert count_jobs(pg_base, schema) == 0
        conn.commit()
        # and everyone does after.
        assert handle.state().value == "ready"
        # When another one is rolled back, it never existed.
        send.options(connection=conn).enqueue("b@example.com")
        conn.rollback()
    assert count_jobs(pg_base, schema) == 1


async def test_psycopg_async_connection_commit_and_rollback(
    send: Task[[str], None], pg_base: str, schema: str
) -> None:
    async with await psycopg.AsyncConnection.connect(pg_base) as conn:
        kept = await send.options(connection=conn).enqueue_async("a@example.com")
        await conn.commit()
        await send.options(connection=conn).enqueue_async("b@example.com")
        await conn.rollback()
        async with conn.transaction():
            await send.app.enqueue_many_async(
                [send.call("c@example.com"), send.call("d@example.com")], connection=conn
            )
    assert count_jobs(pg_base, schema) == 3
    assert (await kept.info_async()).state.value == "ready"


def test_sqlalchemy_session_commit_and_rollback(
    send: Task[[str], None], pg_base: str, schema: str
) -> None:
    engine = create_engine(sa_url(pg_base))
    try:
        with Session(engine) as session:
            session.execute(text("SELECT 1"))  # the session's transaction is open
            send.options(connection=session).enqueue("a@example.com")
            session.rollback()
        with Session(engine) as session, session.begin():
            send.options(connection=session).enqueue("b@example.com")
        assert count_jobs(pg_base, schema) == 1
    finally:
        engine.dispose()


def test_sqlalchemy_connection_commit_and_rollback(
    send: Task[[str], None], pg_base: str, schema: str
) -> None:
    engine = create_engine(sa_url(pg_base))
    try:
        with engine.connect() as conn:
            send.options(connection=conn).enqueue("a@example.com")
            conn.rollback()
            send.app.enqueue_many([send.call("b@example.com")], connection=conn)
            assert count_jobs(pg_base, schema) == 0
            conn.commit()
        assert count_jobs(pg_base, schema) == 1
    finally:
        engine.dispose()


async def test_sqlalchemy_async_session_commit_and_rollback(
    send: Task[[str], None], pg_base: str, schema: str
) -> None:
    engine = create_async_engine(sa_url(pg_base))
    try:
        async with AsyncSession(engine) as session:
            await send.options(connection=session).enqueue_async("a@example.com")
            await session.rollback()
            await send.options(connection=session).enqueue_async("b@example.com")
            await session.commit()
        assert count_jobs(pg_base, schema) == 1
    finally:
        await engine.dispose()


async def test_idle_workers_wake_on_commit_not_before(pg: PostgresBackend, pg_base: str) -> None:
    claim = asyncio.create_task(pg.claim("w", Routing(), 1, 30.0, wait=30.0))
    await asyncio.sleep(0.2)
    async with await psycopg.AsyncConnection.connect(pg_base) as conn:
        [stored] = await pg.transactions.enqueue_in_async(conn, [job()])
        await asyncio.sleep(0.3)
        assert not claim.done()  # the NOTIFY waits for the commit
        await conn.commit()
    assert [j.id for j in await asyncio.wait_for(claim, 10.0)] == [stored.id]


def test_wrong_connection_kinds_are_config_errors(send: Task[[str], None], pg_base: str) -> None:
    with pytest.raises(ConfigError, match="takes a psycopg Connection"):
        send.options(connection=object()).enqueue("x")
    with psycopg.connect(pg_base) as conn, pytest.raises(ConfigError, match=r"enqueue\(\)"):
        asyncio.run(send.options(connection=conn).enqueue_async("x"))


def test_fifty_concurrent_enqueues_of_one_unique_key_store_one_job(
    pg_url: str, pg_base: str, schema: str
) -> None:
    # Given 50 producers, each with a connection of its own, released at the same instant
    handles = [PostgresBackend(pg_url) for _ in range(50)]
    start = threading.Barrier(50)
    results: list[tuple[str, bool]] = []
    lock = threading.Lock()

    def produce(backend: PostgresBackend) -> None:
        backend.get_sync("warm-up")  # connect before the race
        start.wait(timeout=30)
        [result] = backend.enqueue_sync([job(unique_key="report-7")])
        with lock:
            results.append((result.id, result.existing))

    threads = [threading.Thread(target=produce, args=(h,)) for h in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for h in handles:
        asyncio.run(h.close())

    # Then exactly one job exists, one producer created it, and all 50 name it
    assert count_jobs(pg_base, schema) == 1
    assert len(results) == 50
    assert len({job_id for job_id, _ in results}) == 1
    assert sorted(existing for _, existing in results) == [False] + [True] * 49


async def test_unique_keys_within_one_batch_and_across_transactions(
    pg: PostgresBackend, pg_base: str
) -> None:
    first, again, other = await pg.enqueue(
        [job(unique_key="k"), job(unique_key="k"), job(unique_key="m")]
    )
    assert (first.existing, again.existing, other.existing) == (False, True, False)
    assert again.id == first.id
    async with await psycopg.AsyncConnection.connect(pg_base) as conn:
        [inside] = await pg.transactions.enqueue_in_async(conn, [job(unique_key="k")])
        await conn.rollback()
    assert inside.existing and inside.id == first.id
