"""A job's story on SQLite: the schema step that adds it, and what only SQLite can get wrong.

The behaviour every store shares (the attempt log, progress) is in the contract suite
(`conveyor.testing.contract.story`); here: a file of the previous schema version migrated
(on open and by ``conveyor migrate``), a poison pill's lost run, report times kept exactly,
and a migration step run twice.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.attempts import LOST_ERROR, parse_log
from conveyor.backends.sqlite import SqliteBackend, sql
from conveyor.backends.sqlite.connection import SCHEMA_VERSION
from conveyor.backends.sqlite.sql import NAMES
from conveyor.clock import FakeClock
from conveyor.job import Failure, Lease, Routing, State

from .sqlite_support import job, opened, url_for

PREVIOUS = SCHEMA_VERSION - 1


def previous_version_file(path: Path) -> None:
    """A file as the previous Conveyor wrote it: every step but the last, and two jobs.

    ``old-dead`` died with an error before the attempt log existed; ``old-ready`` waits.
    """
    blocks = sql.load("schema.sql")
    with sqlite3.connect(path) as conn:
        for statement in sql.statements(blocks["meta"]):
            conn.execute(statement)
        for number in range(1, PREVIOUS + 1):
            for statement in sql.statements(blocks[f"migrate_{number}"]):
                conn.execute(statement)
        conn.execute(sql.query("set_schema_version"), {"version": str(PREVIOUS)})
        columns = "id, task, queue, priority, state, payload, max_retries, timeout, run_at, "
        columns += "created_at, updated_at, attempts, worker_id, started_at, last_error, failed_at"
        conn.execute(
            f"INSERT INTO {NAMES['jobs']} ({columns}) VALUES "
            "('old-dead', 't', 'q', 1, 'dead', x'5b5d', 0, 5.0, 1.0, 1.0, 3.0, 1, 'w0', 2.0, "
            "'ValueError: old', 3.0), "
            "('old-ready', 't', 'q', 1, 'ready', x'5b5d', 2, 5.0, 1.0, 1.0, 1.0, 0, NULL, NULL, "
            "NULL, NULL)"
        )
    conn.close()


def schema_of(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as conn:
        found = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name LIKE 'conveyor%' ORDER BY name"
        ).fetchall()
        version = conn.execute(
            f"SELECT value FROM {NAMES['meta']} WHERE key = 'schema_version'"
        ).fetchone()
    conn.close()
    return [*((k, n, " ".join((s or "").split())) for k, n, s in found), ("version", "", *version)]


async def test_a_previous_version_file_migrates_on_open_and_its_jobs_have_no_story_yet(
    tmp_path: Path,
) -> None:
    # Given a file of the previous schema version, with a dead job and a waiting one
    old = tmp_path / "old.db"
    previous_version_file(old)

    # When this version opens it
    backend = await opened(old)

    # Then its schema is a fresh file's
    await (await opened(tmp_path / "fresh.db")).close()
    assert schema_of(old) == schema_of(tmp_path / "fresh.db")
    # And the old jobs read with an empty log and no progress; the dead one still shows
    # its last failure as its one attempt
    dead = await backend.get("old-dead")
    assert dead is not None and dead.unreadable is None
    assert (dead.attempt_log, dead.progress) == ((), None)
    assert [(a.number, a.outcome, a.error) for a in dead.attempt_history()] == [
        (1, "dead", "ValueError: old")
    ]
    # And the waiting one starts its story once it runs
    [claimed] = await backend.claim("w1", Routing(), 1, 30.0)
    assert (claimed.id, claimed.attempt_log) == ("old-ready", ())
    lease = Lease(claimed.id, claimed.lease_token or "")
    assert await backend.progress.report_progress(lease, 1, 2, "half")
    assert await backend.fail(lease, Failure("ValueError: new", "tb", retry_in=0.0))
    record = await backend.get("old-ready")
    assert record is not None
    assert [(a.number, a.outcome) for a in record.attempt_log] == [(1, "failed")]
    assert record.progress is not None and record.progress.note == "half"
    await backend.close()


def test_conveyor_migrate_brings_a_previous_version_file_up_to_date(tmp_path: Path) -> None:
    # Given a file of the previous schema version
    old = tmp_path / "old.db"
    previous_version_file(old)

    # When the operator runs `conveyor migrate` on it
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    done = subprocess.run(
        [sys.executable, "-m", "conveyor", "migrate", "--url", url_for(old)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )

    # Then the file has the story columns and records this version
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(old) as conn:
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({NAMES['jobs']})")}
        [(version,)] = conn.execute(
            f"SELECT value FROM {NAMES['meta']} WHERE key = 'schema_version'"
        ).fetchall()
        log, progress = conn.execute(
            f"SELECT attempt_log, progress FROM {NAMES['jobs']} WHERE id = 'old-dead'"
        ).fetchone()
    conn.close()
    assert {"attempt_log", "progress"} <= columns
    assert (version, log, progress) == (str(SCHEMA_VERSION), None, None)


async def test_a_migration_step_run_again_changes_nothing(tmp_path: Path) -> None:
    # Given a current file with a job that has a story, its version set back by hand
    path = tmp_path / "c.db"
    backend = SqliteBackend(url_for(path), clock=FakeClock())
    await backend.open()
    [added] = await backend.enqueue([job()])
    [claimed] = await backend.claim("w1", Routing(), 1, 30.0)
    assert await backend.fail(Lease(added.id, claimed.lease_token or ""), Failure("e", None, 0.0))
    await backend.close()
    before = schema_of(path)
    with sqlite3.connect(path) as conn:
        conn.execute(
            f"UPDATE {NAMES['meta']} SET value = ? WHERE key = 'schema_version'", (str(PREVIOUS),)
        )
    conn.close()

    # When it is opened again, the last step runs a second time: its columns are there
    backend = await opened(path)

    # Then the schema and the job's story are as they were
    assert schema_of(path) == before
    record = await backend.get(added.id)
    assert record is not None and [a.outcome for a in record.attempt_log] == ["failed"]
    await backend.close()


async def test_a_poison_pill_logs_its_lost_run(tmp_path: Path) -> None:
    # Given a job whose worker vanished, with no recoveries left
    clock = FakeClock()
    backend = SqliteBackend(url_for(tmp_path / "c.db"), clock=clock)
    await backend.open()
    [added] = await backend.enqueue([job()])
    await backend.claim("gone", Routing(), 1, 30.0)
    clock.advance(31)

    # When its expired lease is recovered
    report = await backend.recover(max_recoveries=1)

    # Then it is dead, and its lost run is in the log with its worker and times
    record = await backend.get(added.id)
    assert report.dead == 1 and record is not None and record.state is State.DEAD
    [lost] = record.attempt_log
    assert (lost.number, lost.outcome, lost.worker_id, lost.error) == (
        1,
        "lost",
        "gone",
        LOST_ERROR,
    )
    assert (lost.started_at, lost.ended_at) == (clock.now() - 31, clock.now())
    await backend.close()


async def test_report_numbers_and_times_are_kept_exactly(tmp_path: Path) -> None:
    # Given a clock reading with every digit a float has, like the system clock's
    clock = FakeClock(1_765_100_000.123_456_7)
    path = tmp_path / "c.db"
    backend = SqliteBackend(url_for(path), clock=clock)
    await backend.open()
    [added] = await backend.enqueue([job()])
    [claimed] = await backend.claim("w1", Routing(), 1, 30.0)

    # When a task reports awkward numbers
    lease = Lease(added.id, claimed.lease_token or "")
    assert await backend.progress.report_progress(lease, 0.1 + 0.2, 1 / 3, "«thirds»")

    # Then they read back exactly, with the attempt that reported them
    record = await backend.get(added.id)
    assert record is not None and record.progress is not None
    progress = record.progress
    assert (progress.done, progress.total, progress.note) == (0.1 + 0.2, 1 / 3, "«thirds»")
    assert (progress.attempt, progress.at) == (1, clock.now())
    await backend.close()


@pytest.mark.parametrize("outcome", ["fail", "recover"])
async def test_the_log_is_written_with_the_state_change(tmp_path: Path, outcome: str) -> None:
    # Given a running job
    clock = FakeClock()
    path = tmp_path / "c.db"
    backend = SqliteBackend(url_for(path), clock=clock)
    await backend.open()
    [added] = await backend.enqueue([job()])
    [claimed] = await backend.claim("w1", Routing(), 1, 30.0)

    # When its attempt ends without success
    if outcome == "fail":
        lease = Lease(added.id, claimed.lease_token or "")
        assert await backend.fail(lease, Failure("boom", None, retry_in=5.0))
    else:
        clock.advance(31)
        await backend.recover(max_recoveries=3)
    await backend.close()

    # Then the stored row holds the new state and the entry, as one JSON array of objects
    with sqlite3.connect(path) as conn:
        state, stored = conn.execute(
            f"SELECT state, attempt_log FROM {NAMES['jobs']} WHERE id = ?", (added.id,)
        ).fetchone()
    conn.close()
    assert state == ("scheduled" if outcome == "fail" else "ready")
    [entry] = parse_log(stored)
    assert entry.outcome == ("failed" if outcome == "fail" else "lost")
    assert stored.startswith("[{") and stored.endswith("}]")
