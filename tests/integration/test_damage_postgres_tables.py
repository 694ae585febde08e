"""Damage in PostgreSQL's other tables, and running jobs the reaper must still recover.

Written straight into a real store with psycopg, as in test_damage_postgres.py (whose
docstring lists what the column types prevent). What these tables' types still allow:

* ``workers``: ``stats jsonb`` that is not an object (or too deep for Python), a ``queues``
  array holding NULL, NaN or infinite times, a NaN or infinite ``expires_at`` (``'NaN' >
  now`` is true in PostgreSQL: such a row was listed, and kept, forever).
* ``jobs`` rows the reaper reads: a running job with a NULL, NaN or infinite lease expiry
  (never recovered before), ``recoveries`` at the integer maximum and ``attempts`` at the
  minimum (their ``+ 1`` / ``- 1`` failed the whole recovery statement).
* ``counters`` and ``history`` at the int8 maximum: every ``+ n`` failed its statement (a
  group of acks, every recovery, every history write).
* ``leases.expires_at`` and ``schedules.last_tick`` NaN or infinite: no scheduler could
  lead again, an entry could never record a tick.
* ``slots.holders`` that is not an object, or holds expiries that are not numbers or beyond
  a float; ``rate_windows.starts`` holding NaN or infinity.
"""

from __future__ import annotations

import logging
import time

import pytest

from conveyor.backends.postgres import PostgresBackend
from conveyor.job import HistoryPoint, Lease, Routing, WorkerInfo

from .damage_postgres_support import damage, deep_json, raw, write
from .postgres_support import count_jobs, job, pg, pg_base, pg_url, schema

__all__ = ["pg", "pg_base", "pg_url", "schema"]  # fixtures, imported for pytest

INT8_MAX = 9223372036854775807

WORKER_DAMAGE = {
    "stats_array": ("stats", "'[1, 2]'"),
    "stats_string": ("stats", "'\"busy\"'"),
    "stats_nested_too_deep": ("stats", f"'{deep_json(5000)}'"),
    "queues_holding_null": ("queues", "'{mail,NULL}'"),
    "started_at_nan": ("started_at", "'NaN'"),
    "last_seen_infinity": ("last_seen", "'Infinity'"),
}


def _insert_worker(base: str, schema: str, worker_id: str, column: str, value: str) -> None:
    values = {"stats": "'{}'", "queues": "NULL", "started_at": "1", "last_seen": "1"}
    values[column] = value
    write(
        base,
        schema,
        (
            "INSERT INTO {s}.workers (id, host, pid, queues, started_at, last_seen, expires_at, "
            f"stats) VALUES (%(id)s, 'host', 1, {values['queues']}, {values['started_at']}, "
            f"{values['last_seen']}, extract(epoch FROM now()) + 60, {values['stats']})"
        ),
        {"id": worker_id},
    )


@pytest.mark.parametrize("name", WORKER_DAMAGE)
async def test_a_garbage_worker_row_is_skipped_with_an_error_and_expires(
    pg: PostgresBackend,
    pg_base: str,
    schema: str,
    name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a live worker and a garbage registry row
    await pg.telemetry.register_worker(WorkerInfo("w-ok", "host", 1, 0.0), ttl=30.0)
    column, value = WORKER_DAMAGE[name]
    _insert_worker(pg_base, schema, "w-bad", column, value)

    # When the registry is listed, Then the garbage row is skipped with a logged error
    with caplog.at_level(logging.ERROR, logger="conveyor.postgres"):
        assert [w.id for w in await pg.telemetry.workers()] == ["w-ok"]
    assert any("w-bad" in r.getMessage() and column in r.getMessage() for r in caplog.records)

    # And it expires like any other row: the next registration deletes it
    write(pg_base, schema, "UPDATE {s}.workers SET expires_at = 0 WHERE id = 'w-bad'")
    await pg.telemetry.register_worker(WorkerInfo("w-ok", "host", 1, 0.0), ttl=30.0)
    assert _workers(pg_base, schema) == ["w-ok"]


@pytest.mark.parametrize("expiry", ["NaN", "Infinity"])
async def test_a_worker_row_with_a_nan_or_infinite_expiry_is_not_live_forever(
    pg: PostgresBackend, pg_base: str, schema: str, expiry: str
) -> None:
    _insert_worker(pg_base, schema, "w-bad", "stats", "'{}'")
    write(pg_base, schema, "UPDATE {s}.workers SET expires_at = %(e)s::float8", {"e": expiry})
    assert await pg.telemetry.workers() == []
    await pg.telemetry.register_worker(WorkerInfo("w-ok", "host", 1, 0.0), ttl=30.0)
    assert _workers(pg_base, schema) == ["w-ok"]


def _workers(base: str, schema: str) -> list[str]:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        rows = conn.execute(f'SELECT id FROM "{schema}".workers ORDER BY id').fetchall()
    return [str(r[0]) for r in rows]


# -- the reaper ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "assignments",
    ["lease_expires_at = NULL", "lease_expires_at = 'NaN'", "lease_expires_at = 'Infinity'"],
    ids=["null", "nan", "infinity"],
)
async def test_a_running_job_without_a_usable_lease_expiry_is_recovered(
    pg: PostgresBackend, pg_base: str, schema: str, assignments: str
) -> None:
    # Given a running job whose worker is gone and whose lease expiry is damaged
    await pg.enqueue([job()])
    [running] = await pg.claim("gone", Routing(), 1, 30.0)
    damage(pg_base, schema, running.id, assignments)

    # When the reaper runs, Then the job is back to ready and runs again
    report = await pg.recover(max_recoveries=5)
    assert (report.recovered, report.dead) == (1, 0)
    [again] = await pg.claim("w2", Routing(), 1, 30.0)
    assert again.id == running.id and again.unreadable is None


async def test_counts_at_the_integer_limits_do_not_fail_every_recovery(
    pg: PostgresBackend, pg_base: str, schema: str
) -> None:
    # Given three expired leases: recoveries at the maximum, attempts at the minimum, healthy
    await pg.enqueue([job() for _ in range(3)])
    claimed = await pg.claim("gone", Routing(), 3, 30.0)
    a, b, c = (j.id for j in claimed)
    damage(pg_base, schema, a, "recoveries = 2147483647")
    damage(pg_base, schema, b, "attempts = -2147483648")
    write(pg_base, schema, "UPDATE {s}.jobs SET lease_expires_at = 0")

    # When the reaper runs, Then it recovers them all instead of failing
    report = await pg.recover(max_recoveries=5)
    assert (report.recovered, report.dead) == (2, 1)  # a is out of recoveries
    assert raw(pg_base, schema, a, "state", "recoveries") == {
        "state": "dead",
        "recoveries": "2147483647",
    }
    # And the next claim quarantines b (a negative attempt count) and runs c
    assert [j.id for j in await pg.claim("w2", Routing(), 5, 30.0)] == [c]
    assert raw(pg_base, schema, b, "state")["state"] == "dead"


# -- counters and history ------------------------------------------------------------------
async def test_counters_at_the_int8_maximum_saturate_instead_of_failing_acks(
    pg: PostgresBackend, pg_base: str, schema: str
) -> None:
    # Given every counter at the int8 maximum
    write(pg_base, schema, "UPDATE {s}.counters SET value = %(v)s", {"v": INT8_MAX})
    await pg.enqueue([job(), job()])
    first, second = await pg.claim("w1", Routing(), 2, 30.0)

    # When a stale ack is fenced next to a current one, and the reaper counts a recovery
    stale, current = Lease(first.id, "stale"), Lease(second.id, second.lease_token or "")
    assert [await pg.complete(stale, None), await pg.complete(current, None)] == [False, True]
    assert await pg.extend([stale], 30.0) == [False]
    write(
        pg_base,
        schema,
        "UPDATE {s}.jobs SET lease_expires_at = 0 WHERE id = %(id)s",
        {"id": first.id},
    )
    assert (await pg.recover(max_recoveries=5)).recovered == 1

    # Then every call worked and the counters stay at the maximum
    assert await pg.admin.counters() == {
        "fenced": INT8_MAX,
        "recovered": INT8_MAX,
        "poisoned": INT8_MAX,
    }
    assert count_jobs(pg_base, schema, "state = 'succeeded'") == 1


async def test_history_at_the_int8_maximum_saturates(
    pg: PostgresBackend, pg_base: str, schema: str
) -> None:
    minute = int(time.time()) // 60 * 60
    write(
        pg_base,
        schema,
        "INSERT INTO {s}.history VALUES (%(m)s, 'q', %(v)s, %(v)s)",
        {"m": minute, "v": INT8_MAX},
    )
    await pg.telemetry.record_history([HistoryPoint(minute, "q", 5, 5)], keep=3600.0)
    assert await pg.telemetry.history(minute) == [HistoryPoint(minute, "q", INT8_MAX, INT8_MAX)]


async def test_oldest_ready_skips_a_run_at_that_is_no_time(
    pg: PostgresBackend, pg_base: str, schema: str
) -> None:
    healthy, bad = job(queue="a"), job(queue="b")
    await pg.enqueue([healthy, bad])
    damage(pg_base, schema, bad.id, "run_at = '-Infinity'")
    oldest = await pg.admin.oldest_ready()
    assert list(oldest) == ["a"] and oldest["a"] > 0


# -- the scheduler's tables ----------------------------------------------------------------
@pytest.mark.parametrize("expiry", ["NaN", "Infinity"])
async def test_a_leader_lease_with_a_nan_or_infinite_expiry_is_free(
    pg: PostgresBackend, pg_base: str, schema: str, expiry: str
) -> None:
    write(
        pg_base,
        schema,
        "INSERT INTO {s}.leases VALUES ('scheduler', 'gone', %(e)s::float8)",
        {"e": expiry},
    )
    assert await pg.scheduling.acquire_lease("scheduler", "me", 10.0)


@pytest.mark.parametrize("tick", ["NaN", "Infinity"])
async def test_a_nan_or_infinite_last_tick_counts_as_none_and_is_replaced(
    pg: PostgresBackend, pg_base: str, schema: str, tick: str
) -> None:
    write(
        pg_base, schema, "INSERT INTO {s}.schedules VALUES ('nightly', %(t)s::float8)", {"t": tick}
    )
    assert await pg.scheduling.schedule_state(["nightly"]) == {"nightly": None}
    assert await pg.scheduling.enqueue_tick("nightly", 1_700_000_000.0, [job()]) is not None
    assert await pg.scheduling.schedule_state(["nightly"]) == {"nightly": 1_700_000_000.0}


# -- limits ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "holders",
    ["[1, 2]", '"x"', "7", '{"old": "soon"}', '{"old": 1' + "0" * 400 + ".5}", '{"old": null}'],
    ids=["array", "string", "number", "text_expiry", "expiry_beyond_float", "null_expiry"],
)
async def test_garbage_slot_holders_count_as_none(
    pg: PostgresBackend, pg_base: str, schema: str, holders: str
) -> None:
    write(pg_base, schema, "INSERT INTO {s}.slots VALUES ('k', %(h)s::jsonb)", {"h": holders})
    assert await pg.limits.slot_acquire("k", "me", 1, 30.0)
    await pg.limits.slot_release("k", "me")
    assert await pg.limits.slot_acquire("k", "other", 1, 30.0)


@pytest.mark.parametrize("start", ["NaN", "Infinity"])
async def test_a_nan_or_infinite_rate_start_leaves_the_window(
    pg: PostgresBackend, pg_base: str, schema: str, start: str
) -> None:
    write(
        pg_base,
        schema,
        "INSERT INTO {s}.rate_windows VALUES ('k', ARRAY[%(s)s::float8], 0)",
        {"s": start},
    )
    assert await pg.limits.rate_acquire("k", 1, 60.0) == 0.0
    assert await pg.limits.rate_acquire("k", 1, 60.0) > 0.0  # the real start now fills the window
