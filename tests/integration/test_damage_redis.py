"""Damaged records and index entries in a real Redis store cost one job, never a claim or a
read.

Each test writes one kind of damage straight into the store (redis-py, no Conveyor in
between) with healthy jobs around it, then claims through the real backend: the healthy
jobs come back and run, and the damaged one is quarantined (dead, ``unreadable_record``,
raw fields kept) or, when even that cannot be done, dropped from the index it sat in with
a logged error, its key kept as it is.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from redis import Redis

from conveyor.backends.redis import RedisBackend
from conveyor.backends.redis.claiming import park
from conveyor.job import (
    Failure,
    HistoryPoint,
    JobQuery,
    Lease,
    Priority,
    Routing,
    State,
    WorkerInfo,
)

from .damage_redis_support import (
    EVERYTHING,
    assert_healthy_run,
    assert_quarantined,
    assert_reads_work,
    backend,
    claim_all,
    errors,
    five_jobs,
    job,
    raw,
)

__all__ = ["backend", "raw"]  # fixtures, imported for pytest

LANE = "17:defaultapp.work"  # normal priority, queue "default", task "app.work"


def lane_key(backend: RedisBackend, lane: str = LANE) -> str:
    """A lane's ZSET part: jobs already due, released, recovered or retried."""
    return f"{backend.keys.base}ready:{lane}"


def fifo_key(backend: RedisBackend, lane: str = LANE) -> str:
    """A lane's LIST part: jobs enqueued to run now."""
    return f"{backend.keys.base}fifo:{lane}"


# -- records that cannot be decoded: quarantined -------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["{not json", "[1, 2]", '"text"', "null"],
    ids=["invalid", "array", "string", "null"],
)
async def test_headers_that_are_not_a_json_object_quarantine_one_job(
    backend: RedisBackend, raw: Redis, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    # Given five ready jobs, the middle one with garbage headers
    healthy, bad = await five_jobs(backend)
    raw.hset(backend.keys.job(bad), "headers", value)
    # When a worker claims them all
    claimed = await claim_all(backend)
    # Then the four healthy ones run and the damaged one is dead, its headers kept
    await assert_healthy_run(backend, claimed, healthy)
    stored = assert_quarantined(backend, raw, bad, "headers")
    assert stored[b"headers"] == value.encode()
    await assert_reads_work(backend, bad, "headers")
    assert f"quarantined job {bad}" in errors(caplog)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout", "soon"),
        ("timeout", "nan"),
        ("run_at", "later"),
        ("run_at", "inf"),
        ("created_at", "yesterday"),
        ("attempts", "many"),
        ("attempts", "1.5"),
        ("max_retries", "3.5"),
        ("recoveries", "x"),
    ],
)
async def test_a_number_field_holding_something_else_quarantines_one_job(
    backend: RedisBackend, raw: Redis, field: str, value: str
) -> None:
    healthy, bad = await five_jobs(backend)
    raw.hset(backend.keys.job(bad), field, value)
    claimed = await claim_all(backend)
    await assert_healthy_run(backend, claimed, healthy)
    stored = assert_quarantined(backend, raw, bad, field)
    assert stored[field.encode()] == value.encode()  # attempts too: never incremented
    await assert_reads_work(backend, bad, field)
    stats = {(s.queue, s.priority): s.counts for s in await backend.admin.stats()}
    assert stats[("default", Priority.NORMAL)] == {State.SUCCEEDED: 4, State.DEAD: 1}


@pytest.mark.parametrize("field", ["task", "queue", "unique_key"])
async def test_bytes_that_are_not_utf8_quarantine_one_job(
    backend: RedisBackend, raw: Redis, field: str
) -> None:
    healthy, bad = await five_jobs(backend)
    raw.hset(backend.keys.job(bad), field, b"\xff\xfe-x")
    claimed = await claim_all(backend)
    await assert_healthy_run(backend, claimed, healthy)
    stored = assert_quarantined(backend, raw, bad, field)
    assert stored[field.encode()] == b"\xff\xfe-x"
    await assert_reads_work(backend, bad, field)
    # The dead job is counted under the queue its record names, as every script reads it.
    stats = {(s.queue, s.priority): s.counts for s in await backend.admin.stats()}
    dead_queue = "\\xff\\xfe-x" if field == "queue" else "default"
    assert stats[(dead_queue, Priority.NORMAL)].get(State.DEAD) == 1


@pytest.mark.parametrize("field", ["task", "payload", "created_at", "state"])
async def test_a_missing_field_quarantines_one_job(
    backend: RedisBackend, raw: Redis, field: str
) -> None:
    healthy, bad = await five_jobs(backend)
    # A payload of positional arguments only is kept as its bare arguments, in `args`.
    raw.hdel(backend.keys.job(bad), *(("payload", "args") if field == "payload" else (field,)))
    claimed = await claim_all(backend)
    await assert_healthy_run(backend, claimed, healthy)
    stored = assert_quarantined(backend, raw, bad, field)
    if field != "state":  # the quarantine writes the state; every other field stays missing
        assert field.encode() not in stored
    record = await backend.get(bad)
    assert record is not None and record.state is State.DEAD
    assert record.unreadable is not None or field == "state"


async def test_fields_at_their_first_value_may_be_left_out(
    backend: RedisBackend, raw: Redis
) -> None:
    # A queued job's record need not hold its id (the key's), attempts and recoveries (0),
    # headers ({}), updated_at (created_at), max_retries (3) or timeout (300): each is read
    # as that value.
    healthy, lean = await five_jobs(backend)
    key = backend.keys.job(lean)
    raw.hset(key, mapping={"headers": "{}", "max_retries": "7", "timeout": "9.5"})
    raw.hdel(key, "id", "attempts", "recoveries", "headers", "updated_at")
    raw.hdel(key, "max_retries", "timeout")
    record = await backend.get(lean)
    assert record is not None and record.id == lean
    assert (record.attempts, record.recoveries, record.headers) == (0, 0, {})
    assert (record.max_retries, record.timeout) == (3, 300.0)
    assert record.updated_at == record.created_at
    claimed = await claim_all(backend)
    assert sorted(j.id for j in claimed) == sorted([*healthy, lean])
    [job] = [j for j in claimed if j.id == lean]
    assert job.attempts == 1 and job.unreadable is None


async def test_a_damaged_lean_record_shows_what_its_left_out_fields_mean(
    backend: RedisBackend, raw: Redis
) -> None:
    # A record that cannot be read is shown as a placeholder: the fields a lean record
    # leaves out read as their stored meaning (3 retries, 300 s, run_at = created_at), not
    # as the placeholder's stand-ins (0), and `raw` still holds only what is stored.
    _, lean = await five_jobs(backend)
    key = backend.keys.job(lean)
    raw.hdel(key, "max_retries", "timeout", "run_at", "updated_at")
    raw.hset(key, "headers", "{not json")
    record = await backend.get(lean)
    assert record is not None and record.unreadable is not None
    assert "headers" in record.unreadable
    assert (record.max_retries, record.timeout, record.attempts) == (3, 300.0, 0)
    assert record.created_at > 0
    assert record.run_at == record.updated_at == record.created_at
    assert record.raw is not None
    assert not {"max_retries", "timeout", "run_at", "updated_at"} & set(record.raw)
    assert record.raw["headers"] == "{not json"


async def test_an_id_field_naming_another_job_quarantines_the_record(
    backend: RedisBackend, raw: Redis
) -> None:
    healthy, bad = await five_jobs(backend)
    raw.hset(backend.keys.job(bad), "id", healthy[0])  # a copied hash: it would run twice
    claimed = await claim_all(backend)
    await assert_healthy_run(backend, claimed, healthy)
    assert_quarantined(backend, raw, bad, "id")


# -- records no script can place: dropped from their index, kept ------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("queue", None), ("priority", None), ("priority", "x"), ("priority", "7")],
)
async def test_a_record_without_a_usable_queue_or_priority_is_dropped_and_kept(
    backend: RedisBackend,
    raw: Redis,
    caplog: pytest.LogCaptureFixture,
    field: str,
    value: str | None,
) -> None:
    # Given a ready job whose record cannot name a lane or a count any more
    healthy, bad = await five_jobs(backend)
    key = backend.keys.job(bad)
    if value is None:
        raw.hdel(key, field)
    else:
        raw.hset(key, field, value)
    before = raw.hgetall(key)
    # When the jobs are claimed
    claimed = await claim_all(backend)
    # Then the healthy ones run; the damaged one left its lane with an error naming it,
    # and its record is exactly as it was
    await assert_healthy_run(backend, claimed, healthy)
    assert raw.hgetall(key) == before
    assert raw.exists(lane_key(backend), fifo_key(backend)) == 0
    assert bad in errors(caplog) and "record kept" in errors(caplog)
    await assert_reads_work(backend, bad, field)
    stats = {(s.queue, s.priority): s.counts for s in await backend.admin.stats()}
    assert stats == {("default", Priority.NORMAL): {State.SUCCEEDED: 4}}


@pytest.mark.parametrize("kind", ["string", "list", "set"])
async def test_a_job_key_that_is_not_a_hash_is_dropped_and_kept(
    backend: RedisBackend, raw: Redis, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    healthy, bad = await five_jobs(backend)
    key = backend.keys.job(bad)
    raw.delete(key)
    if kind == "string":
        raw.set(key, "garbage")
    elif kind == "list":
        raw.rpush(key, "garbage")
    else:
        raw.sadd(key, "garbage")
    claimed = await claim_all(backend)
    await assert_healthy_run(backend, claimed, healthy)
    assert raw.type(key) == kind.encode()  # kept as it is
    assert bad in errors(caplog) and "not a hash" in errors(caplog)
    record = await assert_reads_work(backend, bad, "(key)")
    assert record.unreadable is not None and kind in record.unreadable
    listed = await backend.admin.query(JobQuery(limit=10))
    assert [j.id for j in listed if j.unreadable] == [bad]
    # Acknowledging it (a worker that held it before the damage) is a stale lease, not a crash
    assert not await backend.complete(Lease(bad, "token"), None)
    assert await backend.admin.cancel(bad) is False
    await backend.recover(max_recoveries=3)


# -- damaged index entries: repaired or skipped -----------------------------------------


async def test_a_non_integer_total_in_counts_stops_nothing(
    backend: RedisBackend, raw: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [r.id for r in await backend.enqueue([job(n) for n in range(5)])]
    counts = backend.keys.counts
    raw.hset(counts, "ready:1:default", "lots")
    raw.hset(counts, "nonsense", "1")
    raw.hset(counts, "ready:9:default", "2")
    # Reads skip what they cannot read
    assert await backend.admin.stats() == []
    assert "lots" in errors(caplog) and "nonsense" in errors(caplog)
    # Claims and acknowledgements go on; the garbage total starts again from their changes
    claimed = await claim_all(backend)
    await assert_healthy_run(backend, claimed, ids)
    assert raw.hget(counts, "ready:1:default") is None
    stats = {(s.queue, s.priority): s.counts for s in await backend.admin.stats()}
    assert stats[("default", Priority.NORMAL)] == {State.SUCCEEDED: 5}
    # Enqueue repairs a garbage total too
    raw.hset(counts, "ready:1:default", "lots")
    await backend.enqueue([job(9)])
    assert raw.hget(counts, "ready:1:default") == b"1"


async def test_garbage_members_of_lanes_are_removed(
    backend: RedisBackend, raw: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [r.id for r in await backend.enqueue([job(n) for n in range(5)])]
    garbage: list[str | bytes] = ["garbage", "9x", "1999:short", "1:", b"\xff\xfe", "13:abcdef"]
    raw.sadd(backend.keys.lanes, *garbage)
    # Reads and parking skip them (parking finds the healthy work)
    assert set(await backend.admin.oldest_ready()) == {"default"}
    assert await park(backend.connection, Routing(), 0.01) == 0.0
    claimed = await claim_all(backend)
    await assert_healthy_run(backend, claimed, ids)
    assert raw.smembers(backend.keys.lanes) == set()
    assert "garbage" in errors(caplog) and "not a lane" in errors(caplog)


async def test_ids_without_a_record_in_ready_and_scheduled_are_dropped(
    backend: RedisBackend, raw: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [r.id for r in await backend.enqueue([job(n) for n in range(5)])]
    ghost = "0" * 16 + "ghost-job"
    raw.zadd(lane_key(backend), {ghost: 0, "short": 0})
    raw.zadd(backend.keys.scheduled, {"ghost-scheduled": 0})
    claimed = await claim_all(backend, limit=5)  # the ghosts do not use up the limit
    await assert_healthy_run(backend, claimed, ids)
    for name in ("ghost-job", "short"[16:], "ghost-scheduled"):
        assert raw.exists(backend.keys.job(name)) == 0  # no record made up for them
    assert raw.zcard(backend.keys.scheduled) == 0
    assert "ghost-job has no record" in errors(caplog)
    assert "ghost-scheduled has no record" in errors(caplog)


async def test_a_stale_ready_entry_for_a_finished_job_is_dropped(
    backend: RedisBackend, raw: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    healthy, bad = await five_jobs(backend)
    raw.hset(backend.keys.job(bad), "state", "cancelled")  # a lane entry left behind
    claimed = await claim_all(backend)
    await assert_healthy_run(backend, claimed, healthy)
    assert raw.hget(backend.keys.job(bad), "state") == b"cancelled"
    assert "stale entry" in errors(caplog)


async def test_a_garbage_worker_registry_entry_is_skipped_and_expires(
    backend: RedisBackend, raw: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    k = backend.keys
    await backend.telemetry.register_worker(WorkerInfo("w-real", "host", 1, 0.0), ttl=60)
    raw.hset(k.workers, mapping={"w-junk": "not a registry entry", "w-json": "1|[1, 2]"})
    raw.zadd(k.workers_expiry, {"w-junk": 2e9, "w-json": 2e9})
    raw.hset(k.workers, "w-orphan", "1|{}")  # no expiry: it would never leave
    assert [w.id for w in await backend.telemetry.workers()] == ["w-real"]
    assert "w-junk" in errors(caplog) and "w-json" in errors(caplog)
    assert not raw.hexists(k.workers, "w-orphan")
    # Past its expiry, a garbage entry leaves like any other
    raw.zadd(k.workers_expiry, {"w-junk": 1, "w-json": 1})
    assert [w.id for w in await backend.telemetry.workers()] == ["w-real"]
    assert raw.hkeys(k.workers) == [b"w-real"]


async def test_garbage_in_the_other_structures_scripts_read_is_repaired(
    backend: RedisBackend, raw: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    k = backend.keys
    # Leader leases: an entry without "|" or with a non-number expiry counts as free
    raw.hset(k.locks, mapping={"scheduler": "garbage", "other": "someone|soon"})
    assert await backend.scheduling.acquire_lease("scheduler", "me", 10)
    assert await backend.scheduling.acquire_lease("other", "me", 10)
    # Schedules: a last tick that is not a number counts as none
    raw.hset(k.schedules, "every-minute", "soon")
    assert await backend.scheduling.schedule_state(["every-minute"]) == {"every-minute": None}
    results = await backend.scheduling.enqueue_tick("every-minute", 60.0, [job(1)])
    assert results is not None and len(results) == 1
    # Rate windows and concurrency slots of the wrong type start again
    raw.set(k.rate("api"), "garbage")
    assert await backend.limits.rate_acquire("api", 1, 60.0) == 0.0
    raw.set(k.slots("db"), "garbage")
    assert await backend.limits.slot_acquire("db", "holder", 1, 30.0)
    # A waiter entry that is not JSON (or not a routing) is dropped; enqueues go on
    raw.hset(k.waiters, mapping={"junk": "{garbage", "junk2": '{"d": "x"}', "junk3": "[]"})
    await backend.enqueue([job(2)])
    assert raw.hlen(k.waiters) == 0
    # Throughput history with a garbage count: read skips it, record repairs it
    raw.zadd(k.history, {"600": 600})
    raw.hset(f"{k.base}history:600", "sdefault", "many")
    assert await backend.telemetry.history(0) == []
    await backend.telemetry.record_history([HistoryPoint(600, "default", 1, 0)], keep=1e12)
    assert raw.hget(f"{k.base}history:600", "sdefault") == b"1"
    # Counters and leases of no job
    raw.hset(k.counters, "fenced", "x")
    assert (await backend.admin.counters())["fenced"] == 0
    assert not await backend.complete(Lease("ghost", "token"), None)  # counted afresh
    assert (await backend.admin.counters())["fenced"] == 1
    # A unique key held by a job that has no record (or is not active) is taken over
    raw.hset(k.unique, "u-1", "ghost")
    [taken] = await backend.enqueue([job(3, unique_key="u-1")])
    assert not taken.existing and raw.hget(k.unique, "u-1") == taken.id.encode()
    raw.zadd(k.leases, {"ghost": 0})
    await backend.recover(max_recoveries=3)
    assert raw.zcard(k.leases) == 0
    assert "every-minute" in errors(caplog) and "many" in errors(caplog)


async def test_a_claim_pipelined_behind_a_parked_wait_quarantines_too(
    backend: RedisBackend, raw: Redis
) -> None:
    # Given a parked claim (its claim rides behind its blocking pop), and damaged work that
    # arrives while it waits
    other = backend.clone()
    await other.open()
    try:
        await other.admin.pause_queue("default")
        ids = [r.id for r in await other.enqueue([job(n) for n in range(3)])]
        raw.hset(backend.keys.job(ids[1]), "headers", "{garbage")
        waiting = asyncio.create_task(backend.claim("w1", EVERYTHING, 3, 30.0, wait=10.0))
        deadline = asyncio.get_running_loop().time() + 10
        while not raw.hlen(backend.keys.waiters):
            assert asyncio.get_running_loop().time() < deadline, "the worker never parked"
            await asyncio.sleep(0.01)
        # When the work becomes claimable, waking it
        await other.admin.resume_queue("default")
        claimed = await asyncio.wait_for(waiting, 10)
        # Then the pipelined claim returns the healthy jobs and quarantined the damaged one
        # on the way
        await assert_healthy_run(backend, claimed, [ids[0], ids[2]])
        assert_quarantined(backend, raw, ids[1], "headers")
    finally:
        await other.close()


async def test_damage_to_running_jobs_stops_neither_the_reaper_nor_acknowledgements(
    backend: RedisBackend, raw: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # Given five running jobs damaged while their worker holds them
    k = backend.keys
    ids = [r.id for r in await backend.enqueue([job(n) for n in range(5)])]
    assert len(await claim_all(backend)) == 5
    poisoned, placeless, stringed, renumbered, healthy = ids
    raw.hset(k.job(poisoned), "recoveries", "x")
    raw.hdel(k.job(placeless), "queue")
    raw.delete(k.job(stringed))
    raw.set(k.job(stringed), "garbage")
    raw.hset(k.job(renumbered), mapping={"seq": "garbage", "run_at": "soon"})
    # When their leases expire and the reaper sweeps
    raw.zadd(k.leases, dict.fromkeys(ids, 0))
    report = await backend.recover(max_recoveries=3)
    # Then one bad record costs itself only
    assert (report.recovered, report.dead) == (2, 1)
    assert raw.hget(k.job(poisoned), "state") == b"dead"  # out of countable recoveries
    assert raw.hget(k.job(placeless), "state") == b"running"  # kept, out of the index
    assert raw.get(k.job(stringed)) == b"garbage"
    assert raw.zcard(k.leases) == 0
    # and the next claim quarantines what it cannot read and runs the rest
    claimed = await claim_all(backend)
    await assert_healthy_run(backend, claimed, [healthy])
    assert_quarantined(backend, raw, renumbered, "run_at")
    # Retrying a dead record that names no queue leaves it dead
    raw.hdel(k.job(renumbered), "queue")
    assert await backend.admin.retry_dead([renumbered]) == 0
    # Cancelling a ready job with a damaged seq works: a job to run now leaves its lane at
    # once, an already due one (the lane's ZSET part) leaves a stale entry dropped later
    [now, due] = [r.id for r in await backend.enqueue([job(9), job(10, run_at=time.time() - 1)])]
    for cancelled in (now, due):
        raw.hset(k.job(cancelled), "seq", "garbage")
        assert await backend.admin.cancel(cancelled)
    assert raw.exists(fifo_key(backend)) == 0 and raw.zcard(lane_key(backend)) == 1
    assert await claim_all(backend) == []
    assert raw.exists(lane_key(backend)) == 0 and "stale entry" in errors(caplog)


async def test_acknowledging_a_job_damaged_while_it_ran_is_fenced_or_drops_it(
    backend: RedisBackend, raw: Redis
) -> None:
    k = backend.keys
    await backend.enqueue([job(n) for n in range(3)])
    first, second, third = await claim_all(backend)
    assert first.lease_token and second.lease_token and third.lease_token
    raw.delete(k.job(first.id))
    raw.set(k.job(first.id), "garbage")
    raw.hdel(k.job(second.id), "task")
    raw.hdel(k.job(third.id), "priority")
    assert not await backend.fail(Lease(first.id, first.lease_token), Failure("x", None, 1.0))
    assert await backend.extend([Lease(first.id, first.lease_token)], 30.0) == [False]
    assert await backend.release(Lease(second.id, second.lease_token))  # out of the index
    assert await backend.defer(Lease(third.id, third.lease_token), 5.0)  # out of the index
    assert raw.zrange(k.leases, 0, -1) == [first.id.encode()]  # the reaper's to sweep
    raw.zadd(k.leases, {first.id: 0})
    await backend.recover(max_recoveries=3)
    assert raw.zcard(k.leases) == 0 and raw.get(k.job(first.id)) == b"garbage"
    assert raw.hget(k.job(second.id), "state") == b"running"
    assert raw.hget(k.job(third.id), "state") == b"running"


@pytest.mark.parametrize("part", ["fifo", "ready"])
async def test_a_ready_lane_key_of_another_type_is_reset(
    backend: RedisBackend, raw: Redis, caplog: pytest.LogCaptureFixture, part: str
) -> None:
    # A lane's LIST part holds jobs enqueued to run now, its ZSET part jobs already due.
    due = {"run_at": time.time() - 60} if part == "ready" else {}
    key = fifo_key(backend) if part == "fifo" else lane_key(backend)
    ids = [r.id for r in await backend.enqueue([job(n, **due) for n in range(2)])]
    raw.delete(key)
    raw.set(key, "garbage")  # the two jobs' entries are gone with it
    assert await claim_all(backend) == []
    assert f"its {part}: key held another type" in errors(caplog) and raw.exists(key) == 0
    # Enqueues into that lane and claims go on; the jobs the damage hid are still on record
    raw.set(key, "garbage")
    [again] = [r.id for r in await backend.enqueue([job(3, **due)])]
    claimed = await claim_all(backend)
    await assert_healthy_run(backend, claimed, [again])
    for job_id in ids:
        assert await backend.get(job_id) is not None
