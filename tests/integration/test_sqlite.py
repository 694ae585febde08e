"""SQLite specifics: URLs, WAL, schema versions, clear errors, and several processes at once."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from conveyor.backends import create_backend
from conveyor.backends.sqlite import SqliteBackend, sql
from conveyor.backends.sqlite.connection import SCHEMA_VERSION, parse_url
from conveyor.backends.sqlite.sql import NAMES
from conveyor.backends.sqlite.store import Store
from conveyor.clock import FakeClock
from conveyor.errors import (
    BackendError,
    BackendUnavailable,
    ConfigError,
    SchemaVersionError,
    SerializationError,
)
from conveyor.job import Failure, JobQuery, Lease, NewJob, Priority, Routing, State

from .sqlite_contender import contend


def job(**fields: object) -> NewJob:
    return NewJob(
        task="t",
        queue="q",
        priority=Priority.NORMAL,
        payload=b"[]",
        max_retries=0,
        timeout=5.0,
        **fields,  # type: ignore[arg-type]
    )


def url_for(path: Path, query: str = "") -> str:
    return f"sqlite:///{path}{query}"


async def opened(path: Path) -> SqliteBackend:
    backend = SqliteBackend(url_for(path))
    await backend.open()
    return backend


def set_version(path: Path, version: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(
            f"UPDATE {NAMES['meta']} SET value = ? WHERE key = 'schema_version'", (version,)
        )
    conn.close()


# -- URLs ---------------------------------------------------------------------------------


def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_url("sqlite:///data/jobs.db").path == tmp_path / "data" / "jobs.db"
    assert parse_url("sqlite:////var/lib/x.db").path == Path("/var/lib/x.db")
    assert parse_url("sqlite:////x.db").synchronous == "FULL"
    assert parse_url("sqlite:////x.db?synchronous=normal").synchronous == "NORMAL"
    assert parse_url("sqlite:////x.db?busy_timeout=500").busy_timeout_ms == 500


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite:///:memory:", "memory://"),
        ("sqlite://", "memory://"),
        ("sqlite://host/x.db", "three slashes"),
        ("sqlite:////x.db?synchronous=sometimes", "synchronous=full|normal"),
        ("sqlite:////x.db?cache=shared", "unsupported option"),
    ],
)
def test_bad_urls_say_what_to_do(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("|", r"\|")):
        SqliteBackend(url)


async def test_relative_url_creates_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    backend = create_backend("sqlite:///state/deep/conveyor.db")
    assert isinstance(backend, SqliteBackend)

    await backend.open()
    await backend.enqueue([job()])
    await backend.close()

    assert (tmp_path / "state" / "deep" / "conveyor.db").is_file()


# -- the file -----------------------------------------------------------------------------


async def test_wal_mode_is_on(tmp_path: Path) -> None:
    backend = await opened(tmp_path / "c.db")
    await backend.close()

    with sqlite3.connect(tmp_path / "c.db") as conn:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    assert mode == "wal"


async def test_clone_is_a_new_unopened_handle_on_the_same_file(tmp_path: Path) -> None:
    clock = FakeClock()
    backend = SqliteBackend(url_for(tmp_path / "c.db"), clock=clock)
    await backend.open()
    [result] = await backend.enqueue([job()])

    other = backend.clone()
    assert isinstance(other, SqliteBackend) and other is not backend
    assert other.url == backend.url and other.clock is clock
    found = await other.get(result.id)  # opens lazily

    assert found is not None and found.created_at == clock.now()
    await other.close()
    await backend.close()


async def test_closed_backend_refuses_calls(tmp_path: Path) -> None:
    backend = await opened(tmp_path / "c.db")
    await backend.close()
    await backend.close()  # twice is fine

    with pytest.raises(BackendError, match="closed"):
        await backend.get("x")
    with pytest.raises(BackendError, match="closed"):
        backend.enqueue_sync([job()])


async def test_sync_and_async_handles_share_one_file(tmp_path: Path) -> None:
    backend = await opened(tmp_path / "c.db")
    [result] = backend.enqueue_sync([job()])

    assert (await backend.get(result.id)) == backend.get_sync(result.id)
    await backend.close()


async def test_retry_dead_accepts_any_number_of_ids(tmp_path: Path) -> None:
    backend = await opened(tmp_path / "c.db")

    assert await backend.retry_dead([f"id-{i}" for i in range(40_000)]) == 0
    await backend.close()


async def test_a_cancelled_claim_gives_its_jobs_back(tmp_path: Path) -> None:
    # Given a claim whose caller is cancelled while the claim runs on the backend's thread
    backend = await opened(tmp_path / "c.db")
    [result] = await backend.enqueue([job()])
    claim = asyncio.create_task(backend.claim("w", Routing(), 1, 600.0))
    await asyncio.sleep(0)  # let it hand the claim to the thread
    claim.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await claim

    # Then the job is ready again at once (not after a 600 s lease), its attempt returned
    deadline = time.monotonic() + 5
    while (found := await backend.get(result.id)) is not None and found.state is not State.READY:
        assert time.monotonic() < deadline, f"job stuck in {found.state}"
        await asyncio.sleep(0.01)
    assert found is not None and found.attempts == 0
    assert [j.id for j in await backend.claim("w", Routing(), 1, 60.0)] == [result.id]
    await backend.close()


# -- schema versions ----------------------------------------------------------------------


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    await (await opened(path)).close()
    set_version(path, str(SCHEMA_VERSION + 1))

    backend = SqliteBackend(url_for(path))
    with pytest.raises(SchemaVersionError, match=r"newer Conveyor.*Upgrade Conveyor"):
        await backend.open()
    with pytest.raises(SchemaVersionError, match=str(path)):
        backend.enqueue_sync([job()])
    await backend.close()


async def test_an_older_schema_is_migrated_forward_keeping_data(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    backend = await opened(path)
    [result] = await backend.enqueue([job()])
    await backend.close()
    set_version(path, "0")

    backend = await opened(path)

    assert (await backend.get(result.id)) is not None
    await backend.close()
    with sqlite3.connect(path) as conn:
        row = conn.execute(
            f"SELECT value FROM {NAMES['meta']} WHERE key = 'schema_version'"
        ).fetchone()
    conn.close()
    assert row == (str(SCHEMA_VERSION),)


async def test_version_1_unique_index_is_narrowed_to_keyed_jobs(tmp_path: Path) -> None:
    # Given a version 1 file, whose unique-key index also held every job without a key
    path = tmp_path / "c.db"
    backend = await opened(path)
    [held] = await backend.enqueue([job(unique_key="k")])
    await backend.close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"DROP INDEX {NAMES['jobs_unique']}")
        conn.execute(
            f"CREATE UNIQUE INDEX {NAMES['jobs_unique']} ON {NAMES['jobs']} (unique_key) "
            "WHERE state IN ('scheduled', 'ready', 'running')"
        )
    conn.close()
    set_version(path, "1")

    # When it is opened by this version
    backend = await opened(path)

    # Then the index only covers keyed jobs, and a held key still returns its job
    with sqlite3.connect(path) as conn:
        [index_sql] = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = ?", (NAMES["jobs_unique"],)
        ).fetchone()
    conn.close()
    assert "unique_key IS NOT NULL" in index_sql
    [again] = await backend.enqueue([job(unique_key="k")])
    assert again.existing and again.id == held.id
    await backend.close()


async def test_the_unique_key_lookup_uses_the_index(tmp_path: Path) -> None:
    await (await opened(tmp_path / "c.db")).close()
    with sqlite3.connect(tmp_path / "c.db") as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN " + sql.query("active_with_key"), {"unique_key": "k"}
        ).fetchall()
    conn.close()
    assert NAMES["jobs_unique"] in " ".join(str(row[-1]) for row in plan)


def schema_of(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name LIKE 'conveyor%' ORDER BY name"
        ).fetchall()
    conn.close()
    return [(kind, name, " ".join((text or "").split())) for kind, name, text in rows]


def version_3_file(path: Path) -> None:
    """A file as Conveyor wrote it at schema version 3 (before limits and operations)."""
    blocks = sql.load("schema.sql")
    with sqlite3.connect(path) as conn:
        for block in ("meta", "migrate_1", "migrate_2", "migrate_3"):
            for statement in sql.statements(blocks[block]):
                conn.execute(statement)
        conn.execute(sql.query("set_schema_version"), {"version": "3"})
    conn.close()


async def test_a_version_3_file_migrates_to_the_fresh_schema(tmp_path: Path) -> None:
    # Given a version 3 file holding a ready job
    old = tmp_path / "old.db"
    version_3_file(old)
    with sqlite3.connect(old) as conn:
        conn.execute(
            f"INSERT INTO {NAMES['jobs']} (id, task, queue, priority, state, payload, "
            "max_retries, timeout, run_at, created_at, updated_at) "
            "VALUES ('j1', 't', 'q', 1, 'ready', x'5b5d', 0, 5.0, 1.0, 1.0, 1.0)"
        )
    conn.close()

    # When this version opens it
    backend = await opened(old)

    # Then its schema is exactly a fresh file's, and the new tables work on the old data
    await (await opened(tmp_path / "fresh.db")).close()
    assert schema_of(old) == schema_of(tmp_path / "fresh.db")
    await backend.pause_queue("q")
    assert await backend.claim("w", Routing(), 10, 30.0) == []
    await backend.resume_queue("q")
    assert [j.id for j in await backend.claim("w", Routing(), 10, 30.0)] == ["j1"]
    assert await backend.rate_acquire("k", 1, 60.0) == 0.0
    await backend.close()


def plan_of(path: Path, statement: str, params: dict[str, object]) -> str:
    with sqlite3.connect(path) as conn:
        plan = conn.execute("EXPLAIN QUERY PLAN " + statement, params).fetchall()
    conn.close()
    return " | ".join(str(row[-1]) for row in plan)


async def test_the_claim_skips_paused_queues_without_a_sort(tmp_path: Path) -> None:
    # The paused check reads the tiny paused table once; the claim still walks the claim
    # index in run order and stops after LIMIT rows.
    await (await opened(tmp_path / "c.db")).close()
    clause, params = sql.routing_clause(Routing(queues=("a", "b*")))
    params.update(token="t", expires=1.0, worker_id="w", now=1.0, limit=5)
    plan = plan_of(tmp_path / "c.db", sql.splice(sql.query("claim"), routing=clause), params)
    assert NAMES["jobs_claim"] in plan
    assert NAMES["paused"] in plan
    assert "TEMP B-TREE" not in plan


async def test_delete_looks_jobs_up_by_id(tmp_path: Path) -> None:
    await (await opened(tmp_path / "c.db")).close()
    statement = sql.load("operations.sql")["delete_final"]
    plan = plan_of(tmp_path / "c.db", statement, {"ids": "[]"})
    assert "(id=?)" in plan
    assert NAMES["jobs_claim"] not in plan


async def test_defer_and_resume_wake_a_waiter_on_the_same_handle(tmp_path: Path) -> None:
    # Given a worker waiting on a handle whose only ready job sits in a paused queue
    backend = await opened(tmp_path / "c.db")
    await backend.pause_queue("q")
    await backend.enqueue([job()])
    waiter = asyncio.create_task(backend.wait_for_work(Routing(), 10.0))
    await asyncio.sleep(0.1)
    assert not waiter.done()

    # When the same handle resumes the queue, the waiter wakes
    await backend.resume_queue("q")
    await asyncio.wait_for(waiter, 5.0)

    # And a job deferred by the same handle wakes a waiter too
    [running] = await backend.claim("w", Routing(), 1, 30.0)
    waiter = asyncio.create_task(backend.wait_for_work(Routing(), 10.0))
    await asyncio.sleep(0.1)
    assert await backend.defer(Lease(running.id, running.lease_token or ""), 0.0)
    await asyncio.wait_for(waiter, 5.0)
    await backend.close()


async def test_an_app_database_keeps_its_own_tables(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
        conn.execute("PRAGMA user_version = 7")
    conn.close()

    backend = await opened(path)
    await backend.enqueue([job()])
    await backend.close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (7,)
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)
    conn.close()


# -- clear errors -------------------------------------------------------------------------


async def test_a_directory_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    backend = SqliteBackend(url_for(blocker / "sub" / "c.db"))

    with pytest.raises(BackendUnavailable, match=r"cannot create the directory .*blocker"):
        await backend.open()
    await backend.close()


async def test_a_path_that_is_a_directory(tmp_path: Path) -> None:
    backend = SqliteBackend(url_for(tmp_path))

    with pytest.raises(BackendUnavailable, match="is a directory"):
        await backend.open()
    await backend.close()


async def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are not the pages you are looking for" * 100)
    backend = SqliteBackend(url_for(path))

    with pytest.raises(BackendUnavailable, match=r"notes\.db.*not a database"):
        await backend.open()
    await backend.close()


# -- group commit -------------------------------------------------------------------------


def count_transactions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the number of writes each shared transaction commits."""
    sizes: list[int] = []
    together = Store.together

    def spy(self: Store, writes: Sequence[Callable[[], object]]) -> list[object]:
        sizes.append(len(writes))
        return together(self, writes)

    monkeypatch.setattr(Store, "together", spy)
    return sizes


async def test_acks_that_queue_up_share_one_transaction_and_stay_fenced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 20 running jobs, and a stale token for one of them
    backend = await opened(tmp_path / "c.db")
    await backend.enqueue([job() for _ in range(20)])
    claimed = await backend.claim("w", Routing(), 20, 60.0)
    leases = [Lease(j.id, j.lease_token or "") for j in claimed]
    stale = Lease(leases[0].job_id, "not-the-token")
    sizes = count_transactions(monkeypatch)

    # When all their acks (and the stale one) are sent at once
    acks = [backend.complete(lease, b"1") for lease in leases[:10]]
    acks += [backend.fail(lease, Failure("boom", retry_in=None)) for lease in leases[10:]]
    results = await asyncio.gather(backend.complete(stale, b"x"), *acks)

    # Then they were committed in fewer transactions than acks, each with its own answer
    assert sum(sizes) >= 2 and len(sizes) < len(results)
    assert results == [False] + [True] * 20
    states = [(await backend.get(lease.job_id)) for lease in leases]
    assert [r.state for r in states if r is not None] == [State.SUCCEEDED] * 10 + [State.DEAD] * 10
    assert all(r is not None and r.result == b"1" for r in states[:10])
    assert (await backend.counters())["fenced"] == 1
    await backend.close()


async def test_an_error_in_a_shared_transaction_reaches_only_its_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given running jobs, and a batch of new jobs one of which SQLite cannot store
    backend = await opened(tmp_path / "c.db")
    await backend.enqueue([job() for _ in range(5)])
    claimed = await backend.claim("w", Routing(), 5, 60.0)
    leases = [Lease(j.id, j.lease_token or "") for j in claimed]
    bad = [job(), job(headers={"when": {1, 2}})]  # a set is not JSON
    sizes = count_transactions(monkeypatch)

    # When the bad enqueue queues up together with the acks
    outcomes = await asyncio.gather(
        *[backend.complete(lease, None) for lease in leases[:2]],
        backend.enqueue(bad),
        *[backend.complete(lease, None) for lease in leases[2:]],
        return_exceptions=True,
    )

    # Then only the enqueue failed (and stored nothing); every ack committed
    assert sizes and max(sizes) > 1
    assert isinstance(outcomes[2], SerializationError)
    assert [o for i, o in enumerate(outcomes) if i != 2] == [True] * 5
    assert await backend.get(bad[0].id) is None
    for lease in leases:
        found = await backend.get(lease.job_id)
        assert found is not None and found.state is State.SUCCEEDED
    await backend.close()


async def test_a_locked_file_fails_each_waiting_write(tmp_path: Path) -> None:
    # Given a file another connection holds the write lock on, and a short busy timeout
    path = tmp_path / "c.db"
    await (await opened(path)).close()
    backend = SqliteBackend(url_for(path, "?busy_timeout=50"))
    await backend.open()
    [first, second] = await backend.enqueue([job(), job()])
    claimed = await backend.claim("w", Routing(), 2, 60.0)
    leases = [Lease(j.id, j.lease_token or "") for j in claimed]
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")

    # When both jobs are acked at once
    outcomes = await asyncio.gather(
        *[backend.complete(lease, None) for lease in leases], return_exceptions=True
    )

    # Then each caller hears the file is locked, and after the lock is gone they succeed
    assert all(isinstance(o, BackendUnavailable) for o in outcomes), outcomes
    holder.execute("ROLLBACK")
    holder.close()
    assert await asyncio.gather(*[backend.complete(lease, None) for lease in leases]) == [
        True,
        True,
    ]
    assert {first.id, second.id} == {lease.job_id for lease in leases}
    await backend.close()


# -- several processes --------------------------------------------------------------------


@pytest.mark.timeout(180)
async def test_processes_share_one_file_without_lock_errors(tmp_path: Path) -> None:
    # Given 4 processes that start together on a new file, each enqueueing 200 jobs while
    # claiming and completing whatever is ready, until every job has succeeded
    url = url_for(tmp_path / "shared.db")
    processes, batches = 4, 20
    total = processes * batches * 10
    deadline = time.time() + 120
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        futures = [
            pool.submit(contend, url, f"w{i}", batches, total, deadline) for i in range(processes)
        ]
        # When they are done (any error in a process is raised here)
        claims = [f.result(timeout=150) for f in futures]

    # Then no job was claimed twice, every job succeeded, and no lease was ever lost
    every = [job_id for ids in claims for job_id in ids]
    assert len(every) == len(set(every)) == total
    backend = await opened(tmp_path / "shared.db")
    done = await backend.query(JobQuery(states=(State.SUCCEEDED,), limit=total + 1))
    assert {j.id for j in done} == set(every)
    assert await backend.counters() == {"fenced": 0, "recovered": 0, "poisoned": 0}
    await backend.close()
