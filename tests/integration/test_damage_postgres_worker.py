"""A real worker drains a real PostgreSQL store holding a damaged job, whatever the damage.

The damage is written with psycopg straight into one stored job among healthy ones (see
test_damage_postgres.py for what the column types allow and prevent). The rules a damaged
job is held to, and so the outcome each test expects (`expected`):

* **quarantined** (dead, ``last_error`` starting ``unreadable_record`` and naming the job
  and field): ``headers`` that are not a JSON object, nested deeper than Python's parser
  goes, or holding a number beyond a float or an integer over 4,300 digits; a ``timeout``
  that is not a finite positive number; a ``run_at``, ``created_at``, ``finished_at`` or
  ``failed_at`` that is NaN or infinite; a negative ``attempts``, ``max_retries`` or
  ``recoveries``.
* **harmless**, the job succeeds: any other JSON object in ``headers``; finite times;
  counts of 0 or more; any value at all in the columns the claim rewrites (``updated_at``,
  ``started_at``, ``lease_expires_at``, ``lease_token``, ``worker_id``); any text or NULL in
  ``unique_key``, ``last_error``, ``traceback``; any bytes or NULL in ``result``; a ``task``
  that still names the task.
* **the worker's own verdict**, dead without an unreadable reason: a ``payload`` that is not
  UTF-8 JSON (``decode_error``, the payload kept), a ``task`` naming no registered task
  (``unknown_task``). The backend hands those bytes and names over as they are.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor import Conveyor, Priority
from conveyor.worker import Worker

from .damage_postgres_support import deep_json, write
from .postgres_support import pg_base, pg_url, schema

__all__ = ["pg_base", "pg_url", "schema"]  # fixtures, imported for pytest

SUCCEEDED, DECODE_ERROR, UNKNOWN_TASK = "succeeded", "decode_error", "unknown_task"


@dataclass(frozen=True)
class Damage:
    """A column, the value written into it (a parameter cast to ``sql_type``), the outcome."""

    column: str
    value: Any
    sql_type: str
    #: SUCCEEDED, DECODE_ERROR, UNKNOWN_TASK, or the field named by the quarantine.
    expected: str


async def drain(
    url: str, base: str, schema: str, damage: Damage, healthy: int, first: bool, concurrency: int
) -> tuple[str, dict[str, tuple[str, str | None]]]:
    """Store ``healthy`` jobs and one damaged job, run a burst worker: the damaged job's id
    and every job's (state, last_error)."""
    app = Conveyor(url)
    seen: list[int] = []

    @app.task(name="ok", retries=0)
    async def ok(n: int) -> int:
        seen.append(n)
        return n

    try:
        # The damaged job is first in line, or last: both must cost only itself.
        bad = await ok.options(priority=Priority.HIGH if first else Priority.LOW).enqueue_async(-1)
        good = [await ok.enqueue_async(n) for n in range(healthy)]
        write(
            base,
            schema,
            f"UPDATE {{s}}.jobs SET {damage.column} = %(v)s::{damage.sql_type} WHERE id = %(id)s",
            {"v": damage.value, "id": bad.id},
        )
        worker = Worker(app, burst=True, concurrency=concurrency, reaper=False)
        # Bounded: a claim that failed, spun or stopped early would never end the burst.
        assert await asyncio.wait_for(worker.run(), 60) == 0
        assert sorted(n for n in seen if n >= 0) == list(range(healthy))
        return bad.id, _outcomes(base, schema, [bad.id, *(h.id for h in good)])
    finally:
        await app.aclose()


def _outcomes(base: str, schema: str, ids: list[str]) -> dict[str, tuple[str, str | None]]:
    with psycopg.connect(base, autocommit=True) as conn:
        rows = conn.execute(
            f'SELECT id, state, last_error FROM "{schema}".jobs WHERE id = ANY(%(ids)s)',
            {"ids": ids},
        ).fetchall()
    return {str(r[0]): (str(r[1]), r[2]) for r in rows}


def check(outcomes: dict[str, tuple[str, str | None]], bad: str, expected: str) -> None:
    """Healthy jobs succeeded; the damaged one ended as `expected` says."""
    state, error = outcomes.pop(bad)
    assert all(s == "succeeded" for s, _ in outcomes.values()), outcomes
    if expected == SUCCEEDED:  # last_error is the damage itself when that was written
        assert state == "succeeded" and not (error or "").startswith("unreadable"), error
    elif expected in (DECODE_ERROR, UNKNOWN_TASK):
        assert state == "dead" and error is not None and error.startswith(expected), error
    else:
        assert state == "dead" and error is not None, (state, error)
        assert error.startswith("unreadable_record") and bad in error, error
        assert repr(expected) in error, error


# -- the worker in burst mode, one damage of each family -------------------------------------
WORKER_CASES = {
    "headers_nested_too_deep": Damage("headers", deep_json(5000), "jsonb", "headers"),
    "headers_array": Damage("headers", "[]", "jsonb", "headers"),
    "timeout_nan": Damage("timeout", "NaN", "float8", "timeout"),
    "run_at_minus_infinity": Damage("run_at", "-Infinity", "float8", "run_at"),
    "attempts_negative": Damage("attempts", -3, "int4", "attempts"),
}


@pytest.mark.parametrize("name", WORKER_CASES)
async def test_a_burst_worker_drains_the_store_around_one_damaged_job(
    pg_url: str, pg_base: str, schema: str, name: str
) -> None:
    # Given a damaged job first in line and healthy jobs after it, When a one-slot burst
    # worker drains the store, Then every healthy job ran and the damaged one cost itself
    damage = WORKER_CASES[name]
    bad, outcomes = await drain(pg_url, pg_base, schema, damage, 3, first=True, concurrency=1)
    check(outcomes, bad, damage.expected)


# -- random damage the column types accept ----------------------------------------------------
_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
_JSON_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | _TEXT
    | st.floats(allow_nan=False, allow_infinity=False)
)
_JSON = st.recursive(
    _JSON_SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_NON_FINITE = st.sampled_from(["NaN", "Infinity", "-Infinity"])
_FINITE = st.floats(allow_nan=False, allow_infinity=False).map(repr)


def _headers() -> st.SearchStrategy[Damage]:
    def as_headers(text: str, expected: str) -> Damage:
        return Damage("headers", text, "jsonb", expected)

    harmless = st.dictionaries(_TEXT, _JSON, max_size=4).map(json.dumps)
    not_object = (st.lists(_JSON, max_size=3) | _JSON_SCALAR).map(json.dumps)
    too_deep = st.integers(2000, 6000).map(deep_json)
    beyond_float = st.integers(310, 2000).map(lambda n: '{"n": 1' + "0" * n + ".5}")
    too_long = st.integers(4301, 8000).map(lambda n: '{"n": 1' + "0" * (n - 1) + "}")
    return harmless.map(lambda t: as_headers(t, SUCCEEDED)) | (
        not_object | too_deep | beyond_float | too_long
    ).map(lambda t: as_headers(t, "headers"))


def _float_column(column: str, nullable: bool, rewritten: bool) -> st.SearchStrategy[Damage]:
    values = _NON_FINITE | _FINITE | (st.just(None) if nullable else st.nothing())

    def outcome(value: str | None) -> Damage:
        sound = value is None or math.isfinite(float(value))
        return Damage(column, value, "float8", SUCCEEDED if rewritten or sound else column)

    return values.map(outcome)


def _timeout() -> st.SearchStrategy[Damage]:
    bad = _NON_FINITE | st.floats(max_value=0.0, allow_nan=False, allow_infinity=False).map(repr)
    good = st.floats(1.0, 1e9).map(repr)
    return good.map(lambda v: Damage("timeout", v, "float8", SUCCEEDED)) | bad.map(
        lambda v: Damage("timeout", v, "float8", "timeout")
    )


def _count(column: str) -> st.SearchStrategy[Damage]:
    return st.integers(-(2**31), 2**31 - 1).map(
        lambda v: Damage(column, v, "int4", SUCCEEDED if v >= 0 else column)
    )


def _text(column: str, nullable: bool = True) -> st.SearchStrategy[Damage]:
    values = _TEXT | (st.just(None) if nullable else st.nothing())
    return values.map(lambda v: Damage(column, v, "text", SUCCEEDED))


DAMAGE = st.one_of(
    _headers(),
    _timeout(),
    *(_float_column(c, False, False) for c in ("run_at", "created_at")),
    *(_float_column(c, True, False) for c in ("finished_at", "failed_at")),
    _float_column("updated_at", False, True),
    *(_float_column(c, True, True) for c in ("started_at", "lease_expires_at")),
    *(_count(c) for c in ("attempts", "max_retries", "recoveries")),
    *(_text(c) for c in ("unique_key", "last_error", "traceback", "lease_token", "worker_id")),
    st.binary(max_size=20).map(lambda b: Damage("payload", b"\xff" + b, "bytea", DECODE_ERROR)),
    (st.binary(max_size=20) | st.none()).map(lambda b: Damage("result", b, "bytea", SUCCEEDED)),
    _TEXT.map(lambda t: Damage("task", t, "text", SUCCEEDED if t == "ok" else UNKNOWN_TASK)),
)


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(damage=DAMAGE, healthy=st.integers(1, 4), first=st.booleans(), concurrency=st.integers(1, 3))
def test_random_damage_costs_at_most_the_damaged_job(
    pg_url: str,
    pg_base: str,
    schema: str,
    damage: Damage,
    healthy: int,
    first: bool,
    concurrency: int,
) -> None:
    # One schema for every example: emptied first, so each starts from a clean store
    with psycopg.connect(pg_base, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'jobs'", [schema]
        ).fetchone()
    if exists:
        write(pg_base, schema, "DELETE FROM {s}.jobs")
        write(pg_base, schema, "DELETE FROM {s}.workers")
    bad, outcomes = asyncio.run(drain(pg_url, pg_base, schema, damage, healthy, first, concurrency))
    check(outcomes, bad, damage.expected)
