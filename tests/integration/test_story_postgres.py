"""A job's story on PostgreSQL: the attempt log and progress columns against a real server.

The contract suite (`conveyor.testing.contract.story`) holds every store to the rules; here
is what is PostgreSQL's own: the log is built by the statement that changes the job's
state, on the server's clock; a log damaged in the table (or NULL, as a store migrated from
an older version has it) never makes that statement fail; `conveyor migrate` brings such a
store to the new columns with its jobs readable.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from conveyor.attempts import KEEP, LOST_ERROR
from conveyor.backends.postgres import PostgresBackend, migrations
from conveyor.clock import FakeClock
from conveyor.job import Failure, JobRecord, Lease, Routing, State

from .damage_postgres_support import damage, raw, write
from .postgres_support import job, pg, pg_base, pg_url, schema

__all__ = ["pg", "pg_base", "pg_url", "schema"]  # fixtures, imported for pytest

#: The last schema version without the story columns (migrate_5 adds them).
BEFORE_STORY = 4


def entry(number: int, outcome: str = "failed") -> dict[str, object]:
    """A stored log entry as a store writes it."""
    return {
        "attempt": number,
        "outcome": outcome,
        "worker_id": f"w{number}",
        "started_at": 1.0,
        "ended_at": 2.0,
        "error": f"E{number}",
        "traceback": None,
    }


async def take(pg: PostgresBackend, worker: str = "w") -> tuple[JobRecord, Lease]:
    """Claim the one job waiting."""
    [record] = await pg.claim(worker, Routing(), 1, 30.0)
    return record, Lease(record.id, record.lease_token or "")


async def stored(pg: PostgresBackend, job_id: str) -> JobRecord:
    record = await pg.get(job_id)
    assert record is not None and record.unreadable is None, record
    return record


async def test_the_entry_ends_at_the_servers_now_in_the_same_statement(
    pg: PostgresBackend,
) -> None:
    # Given a job on the server's clock that fails for good
    [new] = [job(max_retries=0)]
    await pg.enqueue([new])
    claimed, lease = await take(pg, "w1")
    error = 'ValueError: "no" \\ {} %(x)s \u00e9\u20ac\U0001f600\nsecond line'
    assert await pg.fail(lease, Failure(error, "Traceback (most recent call last)"))

    # Then its dead attempt ends at the very time the statement marked the job dead, its
    # text exactly as given (JSON escapes made by the server, read back by Python)
    record = await stored(pg, new.id)
    [attempt] = record.attempt_history()
    assert (attempt.number, attempt.outcome, attempt.worker_id) == (1, "dead", "w1")
    assert (attempt.error, attempt.traceback) == (error, "Traceback (most recent call last)")
    assert attempt.started_at == claimed.started_at
    assert attempt.ended_at == record.failed_at == record.finished_at


async def test_progress_is_kept_with_the_servers_now(pg: PostgresBackend) -> None:
    # Given a running job on the server's clock
    [new] = [job()]
    await pg.enqueue([new])
    claimed, lease = await take(pg)

    # When it reports progress
    assert await pg.progress.report_progress(lease, 3, 4, "nearly")

    # Then the report carries its attempt and a time on the server's clock, not before the
    # claim, and reporting touched nothing else of the job
    record = await stored(pg, new.id)
    progress = record.current_progress()
    assert progress is not None
    assert (progress.done, progress.total, progress.note, progress.attempt) == (3, 4, "nearly", 1)
    assert claimed.started_at is not None and progress.at >= claimed.started_at
    assert record.updated_at == claimed.updated_at and record.lease_token == lease.token
    fenced = (await pg.admin.counters())["fenced"]
    assert not await pg.progress.report_progress(Lease(new.id, "0" * 32), 1, 4, None)
    assert (await pg.admin.counters())["fenced"] == fenced  # a late report is not fenced


@pytest.mark.parametrize(
    ("stored_log", "kept"),
    [
        pytest.param("NULL", [], id="null"),
        pytest.param("'{\"attempt\": 1}'", [], id="object"),
        pytest.param("'\"boom\"'", [], id="string"),
        pytest.param("'7'", [], id="number"),
        pytest.param("'null'", [], id="json_null"),
        pytest.param(
            "'" + json.dumps([1, "x", {"attempt": "one"}, entry(1)]) + "'", [1], id="junk_entries"
        ),
        pytest.param("'" + json.dumps([entry(n) for n in range(1, 31)]) + "'", None, id="too_long"),
    ],
)
async def test_a_damaged_log_never_fails_the_failure_that_adds_to_it(
    pg: PostgresBackend, pg_base: str, schema: str, stored_log: str, kept: list[int] | None
) -> None:
    # Given a running job whose stored log is damaged (or NULL, or longer than KEEP)
    [new] = [job(max_retries=50)]
    await pg.enqueue([new])
    _, lease = await take(pg)
    damage(pg_base, schema, new.id, f"attempts = 31, attempt_log = {stored_log}")

    # When the attempt fails
    assert await pg.fail(lease, Failure("boom", None, retry_in=60.0))

    # Then the failure is logged after what could be read, the last KEEP kept
    record = await stored(pg, new.id)
    numbers = [a.number for a in record.attempt_log]
    if kept is None:  # the 30 good entries, then attempt 31: the last KEEP of them
        assert numbers == list(range(32 - KEEP, 32))
    else:
        assert numbers == [*kept, 31]
    # and the new entry is the one `attempts.log_entry` describes, ending at the job's update
    [*_, last] = json.loads(raw(pg_base, schema, new.id, "attempt_log")["attempt_log"])
    assert last == {
        "attempt": 31,
        "outcome": "failed",
        "worker_id": "w",
        "started_at": record.started_at,
        "ended_at": record.updated_at,
        "error": "boom",
        "traceback": None,
    }


async def test_every_expired_lease_is_logged_as_lost_poison_pills_too(
    pg_base: str, pg_url: str, schema: str
) -> None:
    # Given two jobs whose workers vanished: one with recoveries left, one on its last
    clock = FakeClock()
    pg = PostgresBackend(pg_url, clock=clock)
    await pg.open()
    try:
        spare, last = job(), job()
        await pg.enqueue([spare, last])
        await pg.claim("gone", Routing(), 2, 30.0)
        damage(pg_base, schema, last.id, "recoveries = 2")
        clock.advance(31)

        # When one reaper pass recovers both (one statement)
        report = await pg.recover(max_recoveries=3)

        # Then each has a lost attempt numbered as the run was, ending at the store's now
        assert (report.recovered, report.dead) == (1, 1)
        for job_id, state in ((spare.id, State.READY), (last.id, State.DEAD)):
            record = await stored(pg, job_id)
            assert record.state is state
            [lost] = record.attempt_log
            assert (lost.number, lost.outcome, lost.worker_id) == (1, "lost", "gone")
            assert (lost.error, lost.traceback, lost.ended_at) == (LOST_ERROR, None, clock.now())
            assert record.attempts == 0
    finally:
        await pg.close()


async def test_migrate_adds_the_story_to_a_store_with_jobs(
    pg_base: str, pg_url: str, schema: str
) -> None:
    # Given a store at the last version without the story, holding a dead and a running job
    async with await psycopg.AsyncConnection.connect(pg_base, autocommit=True) as conn:
        await migrations.apply_steps(conn, schema, BEFORE_STORY)
    insert = """
        INSERT INTO {s}.jobs (id, task, queue, priority, state, payload, attempts, max_retries,
            timeout, run_at, created_at, updated_at, started_at, worker_id, lease_token,
            lease_expires_at, last_error, failed_at, finished_at)
        VALUES
        ('old-dead', 't', 'q', 1, 'dead', '', 1, 0, 5, 1, 1, 3, 2, 'w0', NULL, NULL,
         'Fail: old', 3, 3),
        ('old-running', 't', 'q', 1, 'running', '', 1, 3, 5, 1, 1, 2, 2, 'w0', 'tok',
         4000000000, NULL, NULL, NULL)
    """
    write(pg_base, schema, insert)

    # When it is migrated (what `conveyor migrate` runs)
    pg = PostgresBackend(pg_url)
    assert f"from version {BEFORE_STORY} to" in await pg.migrate()
    try:
        # Then old jobs read with no log; a dead one shows its last failure as its attempt
        dead = await stored(pg, "old-dead")
        assert dead.attempt_log == () and dead.progress is None
        [attempt] = dead.attempt_history()
        assert (attempt.outcome, attempt.error, attempt.ended_at) == ("dead", "Fail: old", 3.0)
        # and the running one reports progress and logs its failure into the new columns
        lease = Lease("old-running", "tok")
        assert await pg.progress.report_progress(lease, 1, None, None)
        assert await pg.fail(lease, Failure("boom", None, retry_in=5.0))
        running = await stored(pg, "old-running")
        assert [(a.number, a.outcome, a.error) for a in running.attempt_log] == [
            (1, "failed", "boom")
        ]
        assert running.progress is not None and running.progress.attempt == 1
    finally:
        await pg.close()
