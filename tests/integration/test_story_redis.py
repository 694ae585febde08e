"""A job's story on a real Redis store: the attempt log fail.lua and recover.lua keep, and
progress.lua's reports, beyond the contract suite: times kept to the last digit, the
texts as the task gave them, poison pills, and damage that costs the log at most, never a
settle, a report or a read.

Damage is written straight into the store (redis-py, no Conveyor in between), as another
program or a hand edit would.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest
from redis import Redis

from conveyor.attempts import KEEP, LOST_ERROR, entry_texts
from conveyor.backends.redis import RedisBackend, codec
from conveyor.backends.redis.scripts import script
from conveyor.clock import FakeClock
from conveyor.job import Failure, JobRecord, Lease, State
from conveyor.tracebacks import MARKER

from .damage_redis_support import EVERYTHING, backend, fresh_url, job, raw

__all__ = ["backend", "raw"]  # fixtures, imported for pytest

#: A time with more significant digits than cjson's 14 (it would write 1765000000.1235).
START = 1765000000.123456


@pytest.fixture
async def fake() -> AsyncIterator[tuple[RedisBackend, FakeClock]]:
    """A store on a clock that only moves when told, starting at `START`."""
    clock = FakeClock(START)
    b = RedisBackend(fresh_url(), clock=clock)
    await b.open()
    try:
        yield b, clock
    finally:
        await b.close()


async def running(b: RedisBackend, max_retries: int = 50) -> JobRecord:
    """A new job, claimed by worker w1."""
    await b.enqueue([job(1, max_retries=max_retries)])
    [claimed] = await b.claim("w1", EVERYTHING, 1, 30.0)
    return claimed


def lease(record: JobRecord) -> Lease:
    assert record.lease_token is not None
    return Lease(record.id, record.lease_token)


async def stored(b: RedisBackend, job_id: str) -> JobRecord:
    record = await b.get(job_id)
    assert record is not None and record.unreadable is None, record
    return record


def stored_log(b: RedisBackend, r: Redis, job_id: str) -> list[dict[str, object]]:
    """The log as stored: it must be a JSON array whatever was there before."""
    text = r.hget(b.keys.job(job_id), "attempt_log")
    assert isinstance(text, bytes)
    value = json.loads(text)
    assert isinstance(value, list)
    return value


# -- what the scripts keep -------------------------------------------------------------------


def test_the_scripts_keep_as_many_attempts_as_conveyor_does() -> None:
    for name in ("fail", "recover"):
        found = re.findall(r"^local KEEP = (\d+)$", script(name).source, re.M)
        assert found == [str(KEEP)], name


def test_the_hot_scripts_carry_none_of_the_log() -> None:
    # claim and complete are the per-job scripts whose server time counts most
    for name in ("enqueue", "claim", "complete", "extend"):
        source = script(name).source
        assert "attempt_log" not in source and "log_append" not in source, name


async def test_times_keep_every_digit_as_the_log_fills_and_rolls(
    fake: tuple[RedisBackend, FakeClock], raw: Redis
) -> None:
    # Given a job failing more times than the log keeps, at times with 16 digits
    b, clock = fake
    first = await running(b)
    claimed, starts, ends = first, [], []
    for n in range(KEEP + 2):
        clock.advance(0.000123)
        starts.append(claimed.started_at)
        ends.append(clock.now())
        assert await b.fail(lease(claimed), Failure(f"E: {n}", None, retry_in=0.0))
        [claimed] = await b.claim(f"w{n + 2}", EVERYTHING, 1, 30.0)
    # Then every kept entry, including those read back and written again once the log was
    # full, has the claim's start and the store's end exactly
    log = (await stored(b, first.id)).attempt_log
    assert [a.number for a in log] == list(range(3, KEEP + 3))
    assert [a.started_at for a in log] == starts[2:]
    assert [a.ended_at for a in log] == ends[2:]
    assert starts[0] == START and ends[-1] != round(ends[-1], 4)
    assert [a.worker_id for a in log] == [f"w{n + 1}" for n in range(2, KEEP + 2)]
    # and the claim hands the worker the log too
    assert claimed.attempt_log == log
    assert len(stored_log(b, raw, first.id)) == KEEP


async def test_the_servers_clock_ends_an_attempt_when_the_job_says(backend: RedisBackend) -> None:
    claimed = await running(backend, max_retries=0)
    assert await backend.fail(lease(claimed), Failure("Fail: no", "tb"))

    record = await stored(backend, claimed.id)
    [attempt] = record.attempt_log
    assert (attempt.outcome, attempt.worker_id) == ("dead", "w1")
    assert attempt.started_at == claimed.started_at
    assert attempt.ended_at == record.failed_at == record.updated_at


async def test_error_and_traceback_are_kept_as_the_task_gave_them(backend: RedisBackend) -> None:
    error = 'ValueError: héllo ✓ / \\ "quoted"\n\ttab \x00 nul \U0001f600'
    traceback = 'File "tâche.py", line 1\n' * 3 + error + MARKER + "conveyor internals"
    claimed = await running(backend)
    assert await backend.fail(lease(claimed), Failure(error, traceback, retry_in=60.0))

    [attempt] = (await stored(backend, claimed.id)).attempt_log
    assert (attempt.error, attempt.traceback) == entry_texts(error, traceback)
    assert attempt.traceback is not None and attempt.traceback.endswith(error)


async def test_a_poison_pill_logs_its_lost_run(
    fake: tuple[RedisBackend, FakeClock], raw: Redis
) -> None:
    # Given a job whose worker vanished once too often
    b, clock = fake
    claimed = await running(b)
    clock.advance(31)
    assert (await b.recover(max_recoveries=1)).dead == 1

    # Then it is dead, and its story has the lost run with the number it had
    record = await stored(b, claimed.id)
    assert record.state is State.DEAD and record.attempts == 0
    [attempt] = record.attempt_log
    assert (attempt.number, attempt.outcome, attempt.worker_id) == (1, "lost", "w1")
    assert (attempt.error, attempt.traceback) == (LOST_ERROR, None)
    assert (attempt.started_at, attempt.ended_at) == (START, record.failed_at)


# -- damage --------------------------------------------------------------------------------

DAMAGED_LOGS = {
    "not JSON": (b"[{garbage", 0),
    "an object": (b'{"attempt": 1}', 0),
    "a string": (b'"text"', 0),
    "empty": (b"", 0),
    "an empty array": (b" [ ] ", 0),
    "not UTF-8": (b"[\xff\xfe]", 0),
    "nested too deep": (b"[" * 5000 + b"]" * 5000, 0),
    "written by hand": (b'[ {"outcome": "lost", "attempt": 1} ]\n', 1),
    "a time too large for a float": (
        b'[{"attempt": 1, "outcome": "lost", "started_at": 1' + b"0" * 400 + b"}]",
        1,
    ),
    "junk entries": (
        b'[1, "x", [2], null, {"attempt": "2"}, {"attempt": 1, "outcome": "lost"}]',
        1,
    ),
}


@pytest.mark.parametrize("value,kept", DAMAGED_LOGS.values(), ids=DAMAGED_LOGS.keys())
async def test_a_damaged_log_costs_at_most_itself(
    backend: RedisBackend, raw: Redis, value: bytes, kept: int
) -> None:
    # Given a running job whose log was damaged
    claimed = await running(backend)
    raw.hset(backend.keys.job(claimed.id), "attempt_log", value)
    # Then it reads, its log as far as it can be read
    assert len((await stored(backend, claimed.id)).attempt_log) == kept
    # and its failure is settled, its attempt added to what could be kept
    assert await backend.fail(lease(claimed), Failure("E: late", None, retry_in=60.0))
    record = await stored(backend, claimed.id)
    assert record.state is State.SCHEDULED
    assert [a.error for a in record.attempt_log][-1] == "E: late"
    assert len(record.attempt_log) == kept + 1
    stored_log(backend, raw, claimed.id)


async def test_a_full_log_of_junk_rolls_into_valid_json(
    fake: tuple[RedisBackend, FakeClock], raw: Redis
) -> None:
    # Given a full log, mostly junk, with one good entry at an exact time
    b, _ = fake
    claimed = await running(b)
    good = {"attempt": 7, "outcome": "failed", "started_at": START, "ended_at": START + 1e-6}
    junk: list[object] = [1, "x", [2, 3], None, {"nested": {"a": 1}, "n": 1e300}]
    junk += [{"attempt": "1", "outcome": "lost", "error": "kept"}] * (KEEP - len(junk) - 1)
    raw.hset(b.keys.job(claimed.id), "attempt_log", json.dumps([*junk, good]))
    # When the next failure drops the oldest entry
    assert await b.fail(lease(claimed), Failure("E: x", None, retry_in=60.0))
    # Then what is stored is a JSON array again, the good entry exact
    log = (await stored(b, claimed.id)).attempt_log
    assert [(a.number, a.started_at, a.ended_at) for a in log] == [
        (7, START, START + 1e-6),
        (1, START, START),
    ]
    entries = stored_log(b, raw, claimed.id)
    assert len(entries) == KEEP and entries[:4] == ["x", {}, None, {"nested": None, "n": 1e300}]
    assert entries[-3] == junk[-1]


async def test_a_full_log_with_entries_inside_entries_rolls_entry_by_entry(
    backend: RedisBackend, raw: Redis
) -> None:
    # Given a full log in the shape the scripts write, one entry holding another inside
    claimed = await running(backend)
    entries: list[dict[str, object]] = [{"attempt": n, "outcome": "lost"} for n in range(KEEP)]
    entries[0]["inner"] = entries[-1]["inner"] = [0, {"attempt": 99}]
    text = json.dumps(entries, separators=(",", ":"))
    raw.hset(backend.keys.job(claimed.id), "attempt_log", text)
    # When the next failure drops the oldest entry
    assert await backend.fail(lease(claimed), Failure("E: x", None, retry_in=60.0))
    # Then the oldest entry is dropped, not a piece of one: the log is read back entry by
    # entry (a value that is no entry member, the list inside, is written as null)
    stored = stored_log(backend, raw, claimed.id)
    assert [e["attempt"] for e in stored] == [*range(1, KEEP), 1]
    assert stored[-2] == {**entries[-1], "inner": None}


async def test_not_a_log_not_json_started_afresh_from_the_script_too(
    backend: RedisBackend, raw: Redis
) -> None:
    # A hand-written log of KEEP entries that cjson cannot read is not rolled: replaced
    claimed = await running(backend)
    raw.hset(backend.keys.job(claimed.id), "attempt_log", b"[" + b"{}," * KEEP + b"]")
    assert await backend.fail(lease(claimed), Failure("E: x", None, retry_in=60.0))
    assert [e["error"] for e in stored_log(backend, raw, claimed.id)] == ["E: x"]


async def test_damaged_job_fields_leave_blanks_in_the_entry(
    backend: RedisBackend, raw: Redis
) -> None:
    # Given a running job whose number, worker and start were damaged while it ran
    claimed = await running(backend)
    key = backend.keys.job(claimed.id)
    raw.hset(key, mapping={"attempts": "x", "started_at": "soon"})
    raw.hdel(key, "worker_id")
    # Then its failure is still settled, the entry written with what is known
    assert await backend.fail(lease(claimed), Failure("E: x", None, retry_in=60.0))
    [entry] = stored_log(backend, raw, claimed.id)
    assert entry["attempt"] is entry["worker_id"] is entry["started_at"] is None
    assert entry["outcome"] == "failed" and isinstance(entry["ended_at"], float)


async def test_a_careful_read_keeps_the_log(backend: RedisBackend, raw: Redis) -> None:
    # The field-by-field decode (the one that names damage) reads the log and progress as
    # the fast one does, and never calls them damage
    claimed = await running(backend)
    assert await backend.progress.report_progress(lease(claimed), 1, 2, "half")
    assert await backend.fail(lease(claimed), Failure("E: x", None, retry_in=60.0))
    key = backend.keys.job(claimed.id)
    fields = raw.hgetall(key)
    assert isinstance(fields, dict)
    fast = codec.record(fields, claimed.id.encode())
    assert codec.careful(fields, claimed.id.encode()) == fast
    assert len(fast.attempt_log) == 1 and fast.progress is not None
    fields[b"attempt_log"], fields[b"progress"] = b"[{", b"{"
    careful = codec.careful(fields, claimed.id.encode())
    assert (careful.attempt_log, careful.progress) == ((), None)


# -- progress ------------------------------------------------------------------------------


async def test_a_report_keeps_every_digit_and_the_stores_time(
    fake: tuple[RedisBackend, FakeClock],
) -> None:
    b, clock = fake
    claimed = await running(b)
    clock.advance(0.000001)
    assert await b.progress.report_progress(lease(claimed), 0.1 + 0.2, 1 / 3, "né ✓")
    progress = (await stored(b, claimed.id)).current_progress()
    assert progress is not None
    assert (progress.done, progress.total, progress.note) == (0.1 + 0.2, 1 / 3, "né ✓")
    assert (progress.attempt, progress.at) == (1, clock.now())


async def test_a_damaged_report_reads_as_none_and_is_replaced(
    backend: RedisBackend, raw: Redis
) -> None:
    claimed = await running(backend)
    key = backend.keys.job(claimed.id)
    huge = b'{"done": 1' + b"0" * 400 + b', "attempt": 1, "at": 1}'
    for damage in (b"{garbage", b"[1]", b'{"done": "x", "attempt": 1, "at": 1}', b"\xff", huge):
        raw.hset(key, "progress", damage)
        assert (await stored(backend, claimed.id)).progress is None
    assert await backend.progress.report_progress(lease(claimed), 3, None, None)
    progress = (await stored(backend, claimed.id)).current_progress()
    assert progress is not None and (progress.done, progress.total) == (3, None)


async def test_a_report_on_damage_changes_nothing(backend: RedisBackend, raw: Redis) -> None:
    # A job key of another type refuses the report; a damaged count keeps it unshown
    first = await running(backend)
    raw.delete(backend.keys.job(first.id))
    raw.set(backend.keys.job(first.id), "garbage")
    assert not await backend.progress.report_progress(lease(first), 1, 2, None)
    assert raw.get(backend.keys.job(first.id)) == b"garbage"

    second = await running(backend)
    raw.hset(backend.keys.job(second.id), "attempts", "x")
    assert await backend.progress.report_progress(lease(second), 1, 2, None)
    report = raw.hget(backend.keys.job(second.id), "progress")
    assert isinstance(report, bytes) and json.loads(report)["attempt"] is None
    assert (await backend.admin.counters()).get("fenced", 0) == 0
