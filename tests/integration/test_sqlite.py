"""SQLite specifics: URLs, WAL, schema versions, clear errors, and several processes at once.

Claims, waiting for work and group commit are in test_sqlite_claims.py.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from conveyor.backends import create_backend
from conveyor.backends.sqlite import SqliteBackend, sql
from conveyor.backends.sqlite.connection import SCHEMA_VERSION, parse_url
from conveyor.backends.sqlite.sql import NAMES
from conveyor.clock import FakeClock
from conveyor.errors import (
    BackendError,
    BackendUnavailable,
    ConfigError,
    SchemaVersionError,
)
from conveyor.job import JobQuery, Routing, State

from .sqlite_contender import contend
from .sqlite_support import job, opened, url_for


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

    assert await backend.admin.retry_dead([f"id-{i}" for i in range(40_000)]) == 0
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
    await backend.admin.pause_queue("q")
    assert await backend.claim("w", Routing(), 10, 30.0) == []
    await backend.admin.resume_queue("q")
    assert [j.id for j in await backend.claim("w", Routing(), 10, 30.0)] == ["j1"]
    assert await backend.limits.rate_acquire("k", 1, 60.0) == 0.0
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
    statement = sql.load("admin.sql")["delete_final"]
    plan = plan_of(tmp_path / "c.db", statement, {"ids": "[]"})
    assert "(id=?)" in plan
    assert NAMES["jobs_claim"] not in plan


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
    done = await backend.admin.query(JobQuery(states=(State.SUCCEEDED,), limit=total + 1))
    assert {j.id for j in done} == set(every)
    assert await backend.admin.counters() == {"fenced": 0, "recovered": 0, "poisoned": 0}
    await backend.close()
