"""Damaged bookkeeping in a real SQLite store: counters, leases, schedules, limits, history.

These rows are not jobs, but a damaged one could stop every job: a text expiry never
compares as past (SQLite orders numbers before text), so a lease, a slot or a tick record
would be held forever. Each is repaired or skipped, with a logged error, never fatal.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conveyor.backends.sqlite import SqliteBackend
from conveyor.backends.sqlite.sql import NAMES
from conveyor.clock import FakeClock
from conveyor.errors import SchemaVersionError
from conveyor.job import HistoryPoint, Lease, Routing, State

from .sqlite_damage import NotUtf8, damage, new_job, write


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "damage.db"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def backend(path: Path, clock: FakeClock) -> AsyncIterator[SqliteBackend]:
    store = SqliteBackend(f"sqlite:///{path}", clock=clock)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def logged_error(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(r.levelno == logging.ERROR and text in r.getMessage() for r in caplog.records)


async def test_a_damaged_counter_reads_as_zero_and_the_next_bump_repairs_it(
    backend: SqliteBackend, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the fenced counter holds text
    write(path, NAMES["counters"], "value", "lots", "name = ?", "fenced")

    # When the counters are read, it reads as 0, and says so
    assert (await backend.admin.counters())["fenced"] == 0
    assert logged_error(caplog, "fenced")

    # And a late result from a lost lease counts from there
    await backend.enqueue([new_job()])
    [job] = await backend.claim("w1", Routing(), 1, 30.0)
    assert await backend.complete(Lease(job.id, "not-the-token"), None) is False
    assert (await backend.admin.counters())["fenced"] == 1


async def test_a_scheduler_lease_with_a_text_expiry_can_be_taken_again(
    backend: SqliteBackend, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given scheduler A holds the leader lease, and its expiry became text
    assert await backend.scheduling.acquire_lease("leader", "a", 10.0)
    write(path, NAMES["leases"], "expires_at", "forever", "name = ?", "leader")

    # When scheduler B asks for it, it gets it (a text expiry would never pass)
    assert await backend.scheduling.acquire_lease("leader", "b", 10.0)
    assert logged_error(caplog, "leader")
    assert not await backend.scheduling.acquire_lease("leader", "a", 10.0)


async def test_a_schedule_with_a_damaged_last_tick_reads_as_new_and_fires_again(
    backend: SqliteBackend, path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a cron entry whose recorded tick became text
    assert await backend.scheduling.enqueue_tick("nightly", clock.now(), [new_job()]) is not None
    write(path, NAMES["schedules"], "last_tick", NotUtf8(b"\xff"), "name = ?", "nightly")

    # When the scheduler reads its state, the entry reads as never ticked, and says so
    assert await backend.scheduling.schedule_state(["nightly"]) == {"nightly": None}
    assert logged_error(caplog, "nightly")

    # And the next tick is recorded and enqueued (text never compares older than a number)
    assert (
        await backend.scheduling.enqueue_tick("nightly", clock.now() + 60, [new_job()]) is not None
    )
    assert await backend.scheduling.schedule_state(["nightly"]) == {"nightly": clock.now() + 60}


async def test_a_rate_window_start_with_a_text_time_is_dropped(
    backend: SqliteBackend, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a window of one start per minute, whose only start's time became text
    assert await backend.limits.rate_acquire("api", 1, 60.0) == 0.0
    write(path, NAMES["rate_starts"], "started_at", "just now", "key = ?", "api")

    # When the next start asks, the damaged start is dropped and the window has room
    assert await backend.limits.rate_acquire("api", 1, 60.0) == 0.0
    assert logged_error(caplog, "api")
    # And the window then counts as before
    assert await backend.limits.rate_acquire("api", 1, 60.0) > 0.0


async def test_a_concurrency_slot_with_a_text_expiry_is_freed(
    backend: SqliteBackend, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the one slot of "db" is held, and its expiry became text
    assert await backend.limits.slot_acquire("db", "h1", 1, 30.0)
    write(path, NAMES["slots"], "expires_at", b"\x00", "key = ?", "db")

    # When another holder asks, the damaged slot counts as expired
    assert await backend.limits.slot_acquire("db", "h2", 1, 30.0)
    assert logged_error(caplog, "db")
    assert not await backend.limits.slot_acquire("db", "h3", 1, 30.0)


@pytest.mark.parametrize(
    ("column", "value"),
    [("minute", "noon"), ("queue", NotUtf8(b"q\xff")), ("succeeded", "many")],
)
async def test_damaged_history_rows_are_skipped_and_repaired(
    backend: SqliteBackend,
    path: Path,
    column: str,
    value: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given two minutes of history, one of them damaged
    points = [HistoryPoint(60, "q", 1, 0), HistoryPoint(120, "q", 2, 1)]
    await backend.telemetry.record_history(points, keep=1e12)
    write(path, NAMES["history"], column, value, "minute = ?", 60)

    # When history is read, the damaged row is skipped and said so
    assert await backend.telemetry.history(0) == [points[1]]
    assert logged_error(caplog, "history")

    # And recording more repairs what can be (a text minute goes, a text count restarts
    # from 0; a damaged queue name stays skipped)
    await backend.telemetry.record_history([HistoryPoint(60, "q", 5, 0)], keep=1e12)
    assert await backend.telemetry.history(0) == [HistoryPoint(60, "q", 5, 0), points[1]]


async def test_a_paused_queue_with_a_damaged_name_is_listed_readably(
    backend: SqliteBackend, path: Path
) -> None:
    await backend.admin.pause_queue("mail")
    await backend.admin.pause_queue("jobs")
    write(path, NAMES["paused"], "queue", NotUtf8(b"mail\xff"), "queue = ?", "mail")

    assert await backend.admin.paused_queues() == ["jobs", "mail\\xff"]


async def test_a_running_job_with_a_text_lease_expiry_is_recovered(
    backend: SqliteBackend, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a running job whose lease expiry became text (it would never expire)
    job = new_job()
    await backend.enqueue([job])
    await backend.claim("w1", Routing(), 1, 30.0)
    damage(path, job.id, "lease_expires_at", "later")

    # When the reaper runs, the lease counts as expired and the job is ready again
    report = await backend.recover(max_recoveries=5)
    assert (report.recovered, report.dead) == (1, 0)
    got = await backend.get(job.id)
    assert got is not None and got.state is State.READY and got.unreadable is None
    assert logged_error(caplog, job.id)


async def test_a_running_job_with_a_damaged_recovery_count_is_still_recovered(
    backend: SqliteBackend, path: Path, clock: FakeClock
) -> None:
    # Given two running jobs whose leases expired, one with a text recovery count
    jobs = [new_job(), new_job()]
    await backend.enqueue(jobs)
    await backend.claim("w1", Routing(), 2, 30.0)
    damage(path, jobs[0].id, "recoveries", NotUtf8(b"\xff"))
    clock.advance(31)

    # When the reaper runs, both are recovered (the count restarts from 0)
    report = await backend.recover(max_recoveries=5)
    assert (report.recovered, report.dead) == (2, 0)
    got = await backend.get(jobs[0].id)
    assert got is not None and got.state is State.READY and got.recoveries == 1


async def test_retrying_dead_jobs_works_around_a_damaged_unique_key(
    backend: SqliteBackend, path: Path
) -> None:
    # Given two dead jobs, one with a unique key that is not UTF-8
    jobs = [new_job(unique_key="k1"), new_job()]
    await backend.enqueue(jobs)
    for job in jobs:
        damage(path, job.id, "state", "dead")
    damage(path, jobs[0].id, "unique_key", NotUtf8(b"k\xff"))

    # When every dead job is retried, both go back to ready
    assert await backend.admin.retry_dead() == 2


async def test_a_damaged_schema_version_stops_with_a_clear_error(path: Path) -> None:
    # Given a store whose recorded schema version became garbage
    store = SqliteBackend(f"sqlite:///{path}")
    await store.open()
    await store.close()
    write(path, NAMES["meta"], "value", NotUtf8(b"4\xff"), "key = ?", "schema_version")

    # When it is opened, it stops (guessing could migrate twice) and says what to fix
    again = SqliteBackend(f"sqlite:///{path}")
    with pytest.raises(SchemaVersionError, match="damaged"):
        await again.open()
    await again.close()
