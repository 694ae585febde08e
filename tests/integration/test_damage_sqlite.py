"""Damaged job and worker records in a real SQLite store: one bad row costs one job.

Each test writes one class of damage into one stored row with the sqlite3 module (as a
bad disk, a hand-written UPDATE or another program would), then claims and reads through
the real backend. The damaged job is quarantined by the claim (dead, ``unreadable_record``
naming the job and the field, its damaged content left as it was), every healthy job
around it is claimed, and reads show it as a placeholder without touching it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.backends.sqlite import SqliteBackend
from conveyor.backends.sqlite.sql import NAMES
from conveyor.backends.sqlite.store import Store
from conveyor.backends.unreadable import UNREADABLE
from conveyor.clock import FakeClock
from conveyor.job import Failure, JobQuery, Lease, NewJob, Routing, State, WorkerInfo

from .sqlite_damage import NotUtf8, connect, damage, new_job, raw, row_of, seq_of, write

#: (column, value written): every class of damage a claim must survive.
DAMAGE: list[tuple[str, Any]] = [
    ("headers", "{not json"),
    ("headers", "[1, 2]"),
    ("timeout", "soon"),
    ("run_at", "tomorrow"),
    ("task", NotUtf8(b"send\xff")),
    ("queue", NotUtf8(b"q\xfe\xff")),
    ("payload", NotUtf8(b'{"args":["\xff"],"kwargs":{}}')),
    ("task", b"t"),  # a BLOB where TEXT belongs: it would never match `id = ?` lookups
    ("max_retries", "three"),
    ("created_at", b"\x00\x01"),
    ("recoveries", 1.5),
    ("unique_key", NotUtf8(b"k\xff")),
    ("priority", 7),  # outside the CHECK, written with ignore_check_constraints
]


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


async def surround(backend: SqliteBackend, bad: NewJob) -> list[NewJob]:
    """Enqueue two healthy jobs, ``bad``, then two more; the healthy ones, in order."""
    before, after = [new_job() for _ in range(2)], [new_job() for _ in range(2)]
    await backend.enqueue([*before, bad, *after])
    return before + after


def assert_quarantined(path: Path, seq: int, job_id: str, column: str) -> None:
    row = row_of(path, seq)
    assert row["state"] == b"dead"
    error = row["last_error"].decode()
    assert error.startswith(UNREADABLE)
    assert job_id in error and f"'{column}'" in error
    assert row["failed_at"] is not None and row["finished_at"] is not None
    assert row["lease_token"] is None and row["lease_expires_at"] is None


@pytest.mark.parametrize(("column", "value"), DAMAGE, ids=lambda v: repr(v)[:24])
async def test_a_damaged_job_is_quarantined_and_every_other_job_is_claimed(
    backend: SqliteBackend,
    path: Path,
    column: str,
    value: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given one damaged job among four healthy ones
    bad = new_job()
    healthy = await surround(backend, bad)
    seq = seq_of(path, bad.id)
    damage(path, bad.id, column, value)
    stored = raw(path, seq, column)

    # When a worker claims
    claimed = await backend.claim("w1", Routing(), 10, 30.0)

    # Then every healthy job is claimed, in order, and only those
    assert [job.id for job in claimed] == [job.id for job in healthy]
    # And the damaged one is dead, named, its lease dropped and its content kept
    assert_quarantined(path, seq, bad.id, column)
    assert raw(path, seq, column) == stored
    assert any(
        r.levelno == logging.ERROR and f"job {bad.id} quarantined" in r.getMessage()
        for r in caplog.records
    )
    # And it never comes back
    assert await backend.claim("w1", Routing(), 10, 30.0) == []


@pytest.mark.parametrize(("column", "value"), DAMAGE, ids=lambda v: repr(v)[:24])
async def test_reads_show_a_damaged_job_as_a_placeholder_and_leave_it_alone(
    backend: SqliteBackend, path: Path, column: str, value: Any
) -> None:
    # Given one damaged job among healthy ones
    bad = new_job()
    healthy = await surround(backend, bad)
    damage(path, bad.id, column, value)

    # When it is read by id, synchronously and in a listing
    got = await backend.get(bad.id)
    got_sync = backend.get_sync(bad.id)
    listed = await backend.admin.query(JobQuery(limit=10))

    # Then each read shows a placeholder that says what is wrong and keeps the raw field
    for record in (got, got_sync, next(j for j in listed if j.id == bad.id)):
        assert record is not None and record.id == bad.id
        assert record.unreadable is not None and record.unreadable.startswith(UNREADABLE)
        assert f"'{column}'" in record.unreadable
        assert record.raw is not None and column in record.raw
    # And the healthy jobs read normally, while reading quarantined nothing
    assert [j.unreadable for j in listed if j.id != bad.id] == [None] * len(healthy)
    assert got is not None and got.state is State.READY
    # And the overview reads still work around it
    await backend.admin.stats()
    await backend.admin.oldest_ready()


async def test_a_damaged_id_is_quarantined_by_its_row(backend: SqliteBackend, path: Path) -> None:
    # Given a job whose id is TEXT that is not UTF-8
    bad = new_job()
    healthy = await surround(backend, bad)
    seq = seq_of(path, bad.id)
    damage(path, bad.id, "id", NotUtf8(b"job-\xff"))

    # When a worker claims
    claimed = await backend.claim("w1", Routing(), 10, 30.0)

    # Then the healthy jobs run and the damaged row is quarantined, its id shown escaped
    assert [job.id for job in claimed] == [job.id for job in healthy]
    assert_quarantined(path, seq, "job-\\xff", "id")
    assert raw(path, seq, "id") == ("text", b"job-\xff")
    listed = await backend.admin.query(JobQuery(states=(State.DEAD,)))
    assert [(j.id, j.state) for j in listed] == [("job-\\xff", State.DEAD)]
    assert listed[0].unreadable is not None


async def test_a_quarantined_job_runs_once_repaired_and_retried(
    backend: SqliteBackend, path: Path
) -> None:
    # Given a job quarantined for garbage in its headers
    bad = new_job()
    await backend.enqueue([bad])
    damage(path, bad.id, "headers", "{oops")
    assert await backend.claim("w1", Routing(), 10, 30.0) == []

    # When an operator repairs the record and retries it (`conveyor failed retry ID`)
    damage(path, bad.id, "headers", "{}")
    assert await backend.admin.retry_dead([bad.id]) == 1

    # Then it is claimed like any job, on its first attempt (the quarantine used none)
    [claimed] = await backend.claim("w1", Routing(), 10, 30.0)
    assert (claimed.id, claimed.attempts, claimed.unreadable) == (bad.id, 1, None)


async def test_a_scheduled_job_with_a_text_run_at_is_quarantined_not_left_waiting(
    backend: SqliteBackend, path: Path, clock: FakeClock
) -> None:
    # Given a scheduled job whose run_at became text (SQLite sorts it after every number,
    # so it would never be due) among ready jobs
    bad = new_job(run_at=clock.now() + 3600)
    healthy = await surround(backend, bad)
    seq = seq_of(path, bad.id)
    damage(path, bad.id, "run_at", "at noon")

    # When a worker claims, willing to wait for work
    claimed = await asyncio.wait_for(backend.claim("w1", Routing(), 10, 30.0, wait=5.0), 2.0)

    # Then the healthy jobs are claimed and the damaged one is quarantined at once
    assert [job.id for job in claimed] == [job.id for job in healthy]
    assert_quarantined(path, seq, bad.id, "run_at")
    assert raw(path, seq, "run_at") == ("text", b"at noon")


async def test_a_lone_scheduled_job_with_a_text_run_at_wakes_a_waiting_worker(
    backend: SqliteBackend, path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given only a scheduled job, due in an hour, and a worker's claim waiting for work
    bad = new_job(run_at=clock.now() + 3600)
    await backend.enqueue([bad])
    probed = watch_probes(monkeypatch)
    waiting = asyncio.create_task(backend.claim("w1", Routing(), 10, 30.0, wait=30.0))
    assert await asyncio.to_thread(probed.wait, 5.0), "the claim never started waiting"

    # When the job's run_at becomes text while the claim sleeps
    damage(path, bad.id, "run_at", b"\xff")

    # Then the damage counts as due now, not as never (nor as an error): the claim wakes
    # and quarantines the job, and goes on waiting for healthy work
    seq = seq_of(path, bad.id)
    deadline = time.monotonic() + 2.0
    while row_of(path, seq)["state"] != b"dead":
        assert not waiting.done(), waiting
        assert time.monotonic() < deadline, "the waiting claim did not wake for the damage"
        await asyncio.sleep(0.01)
    assert_quarantined(path, seq, bad.id, "run_at")
    assert not waiting.done()
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting


def watch_probes(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """An event set once a waiting claim has asked whether work is ready (it then sleeps)."""
    probed = threading.Event()
    probe = Store.probe

    def spy(self: Store, statement: str, params: dict[str, Any]) -> tuple[bool, float | None]:
        probed.set()
        return probe(self, statement, params)

    monkeypatch.setattr(Store, "probe", spy)
    return probed


async def test_nulls_the_schema_allows_are_harmless(backend: SqliteBackend, path: Path) -> None:
    # Given a job with NULL in every column that may hold one (and the others refuse it)
    job = new_job()
    await backend.enqueue([job])
    nullable = ["unique_key", "lease_token", "lease_expires_at", "worker_id", "started_at"]
    nullable += ["finished_at", "last_error", "traceback", "result", "failed_at"]
    nullable += ["attempt_log", "progress"]
    for column in nullable:
        damage(path, job.id, column, None)
    for column in ["task", "queue", "headers", "payload", "run_at", "timeout", "max_retries"]:
        with pytest.raises(Exception, match="NOT NULL"):
            damage(path, job.id, column, None)

    # When a worker claims, the job is claimed like any other
    [claimed] = await backend.claim("w1", Routing(), 10, 30.0)
    assert claimed.id == job.id and claimed.unreadable is None


async def test_damage_in_an_earlier_attempts_error_costs_nothing(
    backend: SqliteBackend, path: Path
) -> None:
    # Given a ready job whose last error (from an earlier attempt) is not UTF-8
    job = new_job()
    await backend.enqueue([job])
    damage(path, job.id, "last_error", NotUtf8(b"boom \xff"))

    # When it is read and claimed, it is shown as best it can be and runs
    got = await backend.get(job.id)
    assert got is not None and got.unreadable is None and got.last_error == "boom \\xff"
    [claimed] = await backend.claim("w1", Routing(), 10, 30.0)
    assert claimed.id == job.id


#: (column, value written, attempts still read): damage in a job's story.
STORY_DAMAGE: list[tuple[str, Any, int]] = [
    ("attempt_log", "[{not json", 0),
    ("attempt_log", '{"attempt": 1}', 0),
    ("attempt_log", NotUtf8(b'[{"attempt":1,"outcome":"failed","error":"\xff"}]'), 0),
    ("attempt_log", b"[]", 0),  # a BLOB where TEXT belongs
    ("attempt_log", 7, 0),
    ("attempt_log", "[" * 100_000, 0),  # nested past what a JSON parser recurses into
    ("attempt_log", '[5, {"attempt": "x"}, {"attempt": 1, "outcome": "failed"}]', 1),
    ("progress", "{not json", 0),
    ("progress", '{"done": -1, "attempt": 1, "at": 1.0}', 0),
    ("progress", NotUtf8(b'{"done":1,"note":"\xff","attempt":1,"at":1.0}'), 0),
    ("progress", 3.5, 0),
]


@pytest.mark.parametrize(("column", "value", "readable"), STORY_DAMAGE, ids=lambda v: repr(v)[:24])
async def test_damage_in_a_jobs_story_costs_nothing(
    backend: SqliteBackend, path: Path, column: str, value: Any, readable: int
) -> None:
    # Given a ready job whose attempt log or progress is damaged
    job = new_job()
    await backend.enqueue([job])
    damage(path, job.id, column, value)

    # When it is read, the story shows what can be read of it, and nothing else
    got = await backend.get(job.id)
    assert got is not None and got.unreadable is None
    assert len(got.attempt_log) == readable and got.progress is None

    # And a worker claims it, reports progress and fails it like any other job
    [claimed] = await backend.claim("w1", Routing(), 10, 30.0)
    assert claimed.id == job.id and claimed.unreadable is None
    lease = Lease(job.id, claimed.lease_token or "")
    assert await backend.progress.report_progress(lease, 1, 2, "half")
    assert await backend.fail(lease, Failure("boom", None, retry_in=0.0))

    # Then the new attempt and report are kept: the log goes on, or starts afresh
    record = await backend.get(job.id)
    assert record is not None
    assert [a.outcome for a in record.attempt_log] == ["failed"] * (readable + 1)
    assert record.progress is not None and record.progress.note == "half"


async def test_a_lost_run_is_logged_over_a_damaged_log(
    backend: SqliteBackend, path: Path, clock: FakeClock
) -> None:
    # Given a running job whose attempt log is damaged, and whose worker vanished
    job = new_job()
    await backend.enqueue([job])
    await backend.claim("gone", Routing(), 10, 30.0)
    damage(path, job.id, "attempt_log", "{garbage")
    clock.advance(31)

    # When its lease is recovered, the log starts afresh with the lost run
    assert (await backend.recover(max_recoveries=3)).recovered == 1
    record = await backend.get(job.id)
    assert record is not None and record.state is State.READY
    assert [(a.outcome, a.worker_id) for a in record.attempt_log] == [("lost", "gone")]


async def test_overview_reads_work_around_damaged_names_and_times(
    backend: SqliteBackend, path: Path
) -> None:
    # Given a ready job in a queue whose name is not UTF-8 and one whose run_at is text
    named, timed, healthy = new_job(), new_job(queue="slow"), new_job(queue="fast")
    await backend.enqueue([named, timed, healthy])
    damage(path, named.id, "queue", NotUtf8(b"mail\xff"))
    damage(path, timed.id, "run_at", "later")

    # When the overview is read, it counts every job under a readable queue name
    stats = {(s.queue, s.priority): s.counts for s in await backend.admin.stats()}
    assert {queue for queue, _ in stats} == {"mail\\xff", "slow", "fast"}
    assert sum(n for counts in stats.values() for n in counts.values()) == 3
    # And the oldest waits leave out the job whose run_at is not a time
    assert set(await backend.admin.oldest_ready()) == {"mail\\xff", "fast"}


# -- the worker registry -------------------------------------------------------------------

WORKER_DAMAGE: list[tuple[str, Any]] = [
    ("stats", "{garbage"),
    ("queues", '"mail"'),
    ("host", NotUtf8(b"host-\xff")),
    ("pid", "many"),
    ("started_at", b"\x01"),
    ("expires_at", "never"),
]


@pytest.mark.parametrize(("column", "value"), WORKER_DAMAGE, ids=lambda v: repr(v)[:24])
async def test_a_garbage_worker_entry_is_skipped_and_expires(
    backend: SqliteBackend,
    path: Path,
    clock: FakeClock,
    column: str,
    value: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given two live workers, one of whose registry rows is damaged
    for name in ("w-bad", "w-good"):
        await backend.telemetry.register_worker(WorkerInfo(name, "host", 1, clock.now()), ttl=60)
    write(path, NAMES["workers"], column, value, "id = ?", "w-bad")

    # When the registry is listed, the damaged entry is skipped and said so
    assert [w.id for w in await backend.telemetry.workers()] == ["w-good"]
    assert any("w-bad" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)

    # And once its time is up it is gone, like any other (w-good keeps registering)
    clock.advance(61)
    await backend.telemetry.register_worker(WorkerInfo("w-good", "host", 1, clock.now()), ttl=60)
    assert [w.id for w in await backend.telemetry.workers()] == ["w-good"]
    assert row_count(path, NAMES["workers"]) == 1


def row_count(path: Path, table: str) -> int:
    conn = connect(path)
    try:
        (n,) = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    finally:
        conn.close()
    return int(n)
