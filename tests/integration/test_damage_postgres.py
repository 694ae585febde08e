"""Damaged job rows in a real PostgreSQL store cost one job, never a claim or a read.

Each test writes one kind of damage straight into the jobs table (psycopg, no Conveyor in
between), with healthy jobs around it, then claims through the real backend.

What the column types (schema.sql) let a row hold, and so what is tested here:

* ``headers jsonb``: any JSON value, not just an object: an array, a string, a number, JSON
  ``null``; nesting deeper than Python's parser goes (PostgreSQL takes thousands of levels,
  ``json`` gives up near 1,000); numbers beyond a float (``1e400``) or with more digits
  than ``int()`` takes (4,300). (A long integer such as ``1e400``, which jsonb keeps as
  401 digits, is a Python ``int`` and harmless.)
* ``float8`` columns (``timeout``, ``run_at``, the ``*_at`` times): ``NaN``, ``Infinity``,
  ``-Infinity``, negative or zero. PostgreSQL sorts NaN above every number and
  ``'NaN' <= now`` is false, so such a scheduled job would never fall due.
* ``integer`` counts (``attempts``, ``max_retries``, ``recoveries``): negative values, or
  the maximum, where ``attempts + 1`` used to overflow and fail the whole claim.
* nullable columns: NULL where a running job needs a value (tested in
  test_damage_postgres_tables.py with the reaper, with the other tables).
* ``attempt_log jsonb`` and ``progress jsonb`` (a job's story): anything ``headers`` can
  hold; read leniently (an empty log, no progress), so the job stays readable and claimable.
* ``payload bytea``: any bytes; the worker's decoding turns that into a ``decode_error``
  dead job (test_damage_postgres_worker.py), the backend passes bytes through.

What the types prevent, so no test can write it: text in a number column and numbers out of
the integer's range (typed columns); NULL in a NOT NULL column; bytes that are not UTF-8,
and NUL, in a text column (the database encoding is UTF8); invalid JSON, NaN and a lone
``\\u0000`` in ``jsonb`` (its parser refuses them); a ``priority`` other than 0, 1, 2 and a
``state`` outside the six states (CHECK constraints); a second active job with one unique
key (the partial unique index). An SQL_ASCII database would let text hold any bytes; psycopg
then returns bytes for every text column, a setup Conveyor does not support.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from conveyor.backends.postgres import PostgresBackend
from conveyor.job import JobQuery, Priority, Routing, State, WorkerInfo

from .damage_postgres_support import assert_placeholder, assert_quarantined, damage, deep_json, raw
from .postgres_support import job, pg, pg_base, pg_url, schema

__all__ = ["pg", "pg_base", "pg_url", "schema"]  # fixtures, imported for pytest


@dataclass(frozen=True)
class Damage:
    """One kind of damage: the SET clause that writes it, the field, and what it costs."""

    name: str
    assignments: str
    field: str
    #: ``True``: the claim quarantines the job. ``False``: harmless once claimed (the claim
    #: rewrites the column, or the value is within the rules), so the job is claimed.
    quarantined: bool = True
    #: Whether the column keeps its damaged value through the claim (the raw content).
    kept: bool = True
    #: Whether reads show the job as a placeholder before the claim (outside the rules).
    placeholder: bool = True


DAMAGE = [
    Damage("headers_array", "headers = '[1, 2]'", "headers"),
    Damage("headers_string", "headers = '\"correlation\"'", "headers"),
    Damage("headers_number", "headers = '7'", "headers"),
    Damage("headers_json_null", "headers = 'null'", "headers"),
    Damage("headers_nested_too_deep", f"headers = '{deep_json(5000)}'", "headers"),
    Damage("headers_number_beyond_float", 'headers = \'{"n": 1' + "0" * 400 + ".5}'", "headers"),
    Damage("headers_integer_too_long", 'headers = \'{"n": 1' + "0" * 5000 + "}'", "headers"),
    Damage("timeout_nan", "timeout = 'NaN'", "timeout"),
    Damage("timeout_infinity", "timeout = 'Infinity'", "timeout"),
    Damage("timeout_negative", "timeout = -1", "timeout"),
    Damage("timeout_zero", "timeout = 0", "timeout"),
    Damage("run_at_nan", "run_at = 'NaN'", "run_at"),
    Damage("run_at_minus_infinity", "run_at = '-Infinity'", "run_at"),
    Damage("scheduled_run_at_nan", "state = 'scheduled', run_at = 'NaN'", "run_at"),
    Damage("scheduled_run_at_infinity", "state = 'scheduled', run_at = 'Infinity'", "run_at"),
    Damage("created_at_nan", "created_at = 'NaN'", "created_at"),
    Damage("finished_at_infinity", "finished_at = 'Infinity'", "finished_at", kept=False),
    Damage("failed_at_nan", "failed_at = 'NaN'", "failed_at", kept=False),
    Damage("attempts_negative", "attempts = -1", "attempts"),
    Damage("max_retries_negative", "max_retries = -5", "max_retries"),
    Damage("recoveries_negative", "recoveries = -2147483648", "recoveries"),
    # Harmless once claimed: the claim rewrites these columns, or the count is in range.
    Damage("updated_at_nan", "updated_at = 'NaN'", "updated_at", False, kept=False),
    Damage("started_at_infinity", "started_at = 'Infinity'", "started_at", False, kept=False),
    Damage(
        "attempts_at_integer_max", "attempts = 2147483647", "attempts", False, placeholder=False
    ),
    # A job's story (attempt_log, progress) is history, not what the worker runs: damage
    # there reads as an empty log or no progress, and the job is claimed as usual.
    *(
        Damage(name, assignments, column, quarantined=False, placeholder=False)
        for name, column, assignments in [
            ("attempt_log_object", "attempt_log", "attempt_log = '{\"attempt\": 1}'"),
            ("attempt_log_string", "attempt_log", "attempt_log = '\"boom\"'"),
            ("attempt_log_nested_too_deep", "attempt_log", f"attempt_log = '[{deep_json(5000)}]'"),
            (
                "attempt_log_unhashable_outcome",
                "attempt_log",
                'attempt_log = \'[{"attempt": 1, "outcome": []}]\'',
            ),
            ("progress_array", "progress", "progress = '[1, 2]'"),
            (
                "progress_number_beyond_float",
                "progress",
                'progress = \'{"done": 1' + "0" * 400 + '.5, "attempt": 1, "at": 1}\'',
            ),
        ]
    ),
]


async def _store(pg: PostgresBackend) -> tuple[list[str], str]:
    """Two healthy jobs, the one to damage, two more healthy ones, in claim order."""
    jobs = [job(payload=f"[[{n}],{{}}]".encode()) for n in range(5)]
    await pg.enqueue(jobs)
    ids = [j.id for j in jobs]
    return ids[:2] + ids[3:], ids[2]


@pytest.mark.parametrize("case", DAMAGE, ids=lambda d: d.name)
async def test_a_damaged_job_costs_itself_and_the_claim_returns_the_others(
    pg: PostgresBackend, pg_base: str, schema: str, case: Damage
) -> None:
    # Given healthy jobs around one job with damage the column types accept
    healthy, bad = await _store(pg)
    damage(pg_base, schema, bad, case.assignments)
    before = raw(pg_base, schema, bad, case.field)[case.field]

    # Then reads show it as a placeholder, before any claim (not quarantined by reading)
    if case.placeholder:
        assert_placeholder(await pg.get(bad), bad, case.field)
    assert raw(pg_base, schema, bad, "state")["state"] in ("ready", "scheduled")

    # When a worker claims everything
    claimed = await pg.claim("w1", Routing(), 10, 30.0)

    # Then every healthy job is claimed, in order, and the damaged one costs only itself
    got = [j.id for j in claimed]
    if case.quarantined:
        assert got == healthy
        assert_quarantined(pg_base, schema, bad, case.field)
    else:
        assert sorted(got) == sorted([*healthy, bad])
        assert all(j.unreadable is None for j in claimed)
    if case.kept:
        assert raw(pg_base, schema, bad, case.field)[case.field] == before
    await _reads_keep_working(pg, healthy, bad, case)


async def _reads_keep_working(
    pg: PostgresBackend, healthy: list[str], bad: str, case: Damage
) -> None:
    record = await pg.get(bad)
    sync_record = pg.get_sync(bad)
    if case.quarantined:
        assert record is not None and record.state is State.DEAD
        assert record.last_error is not None and record.last_error.startswith("unreadable")
        if case.kept:  # else the quarantine's failed_at / finished_at replaced the damage
            assert_placeholder(record, bad, case.field)
            assert_placeholder(sync_record, bad, case.field)
    else:
        assert record is not None and record.unreadable is None
    listed = await pg.admin.query(JobQuery(limit=100))
    assert {r.id for r in listed} == {*healthy, bad}
    placeholder = case.quarantined and case.kept
    assert [r.id for r in listed if r.unreadable] == ([bad] if placeholder else [])
    dead = await pg.admin.query(JobQuery(states=(State.DEAD,)))
    assert [r.id for r in dead] == ([bad] if case.quarantined else [])
    stats = await pg.admin.stats()
    assert sum(s.counts.get(State.RUNNING, 0) for s in stats) == len(healthy) + (
        0 if case.quarantined else 1
    )
    assert sum(s.counts.get(State.DEAD, 0) for s in stats) == int(case.quarantined)
    await pg.telemetry.register_worker(WorkerInfo("w1", "host", 1, 0.0), ttl=30.0)
    assert [w.id for w in await pg.telemetry.workers()] == ["w1"]
    assert isinstance(await pg.admin.oldest_ready(), dict)


async def test_a_claim_of_only_damaged_jobs_carries_on_to_the_healthy_ones(
    pg: PostgresBackend, pg_base: str, schema: str
) -> None:
    # Given three damaged jobs first in line and one healthy job after them
    damaged = [job(priority=Priority.HIGH) for _ in range(3)]
    healthy = job(priority=Priority.LOW)
    await pg.enqueue([*damaged, healthy])
    for bad in damaged:
        damage(pg_base, schema, bad.id, "headers = '[]'")

    # When a worker with one free slot claims
    claimed = await pg.claim("w1", Routing(), 1, 30.0)

    # Then the claim quarantines the damaged ones and still answers with the healthy job:
    # an empty answer would make a burst worker stop with work left
    assert [j.id for j in claimed] == [healthy.id]
    for bad in damaged:
        assert_quarantined(pg_base, schema, bad.id, "headers")


async def test_nan_and_infinite_times_neither_block_nor_spin_the_claim(
    pg: PostgresBackend, pg_base: str, schema: str
) -> None:
    # Given scheduled jobs due at NaN and +Infinity, a ready one at NaN, and a healthy job
    odd = [job(run_at=4_000_000_000.0) for _ in range(2)] + [job()]
    healthy = job(priority=Priority.LOW)
    await pg.enqueue([*odd, healthy])
    damage(pg_base, schema, odd[0].id, "run_at = 'NaN'")
    damage(pg_base, schema, odd[1].id, "run_at = 'Infinity'")
    damage(pg_base, schema, odd[2].id, "run_at = 'NaN'")

    # When workers claim until nothing is left (bounded: a spinning claim would not end)
    claimed: list[str] = []
    for _ in range(5):
        got = await pg.claim("w1", Routing(), 1, 30.0)
        if not got:
            break
        claimed += [j.id for j in got]

    # Then the healthy job ran, the damaged ones are quarantined, nothing is left due
    assert claimed == [healthy.id]
    for bad in odd:
        assert_quarantined(pg_base, schema, bad.id, "run_at")
    assert await pg.claim("w1", Routing(), 5, 30.0) == []
