"""A real worker draining a real SQLite store that holds a damaged job.

The first test is the story end to end; the second lets Hypothesis write random damage
(random column, random bytes, text, numbers or NULL) into one job among healthy ones.

What counts as damage is defined here independently of the backend, from what SQLite
stored (its storage class and bytes), by `readable`: a job stays readable when every
column holds its declared type (TEXT of valid UTF-8, an INTEGER, a finite REAL, NULL only
where allowed, ``headers`` a JSON object, ``priority`` 0-2), when the payload or result is a
BLOB (any bytes: the worker judges a payload) or UTF-8 TEXT, and whatever lands in the
columns the claim rewrites (lease, worker, start and update times; ``attempts`` as long as
the claim's ``attempts + 1`` is stored as an INTEGER) or that only describe an earlier attempt
(``last_error``, ``traceback``, ``failed_at``, ``finished_at``).

* A readable job is the worker's like any other: it ends succeeded, or dead for a reason
  of the worker's (an unknown task name, a payload it cannot decode, a timeout it set),
  never ``unreadable_record``.
* An unreadable job is quarantined: dead, ``last_error`` starting ``unreadable_record``
  and naming the field, the damaged value still stored as it was.
* Either way every healthy job succeeds and the burst worker exits normally.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from conveyor import Conveyor, Worker
from conveyor.backends.unreadable import UNREADABLE
from conveyor.settings import load_settings

from .sqlite_damage import JOBS, NotUtf8, connect, damage, raw, row_of, seq_of

#: Columns the claim itself writes: damage there is overwritten before anyone reads it.
CLAIM_WRITES = {"lease_token", "lease_expires_at", "worker_id", "started_at", "updated_at"}
#: Columns that only describe an earlier attempt.
HISTORY = {"last_error", "traceback", "finished_at", "failed_at"}
TEXT = {"id", "task", "queue", "headers", "unique_key"}
INTEGER = {"priority", "max_retries", "recoveries"}
REAL = {"timeout", "run_at", "created_at"}
BYTES = {"payload", "result"}
NULLABLE = {"unique_key", "result"}
#: Every job column but seq (the row's identity) and state (the CHECK admits only real
#: states, and writing one is a state change, not damage).
COLUMNS = sorted(CLAIM_WRITES | HISTORY | TEXT | INTEGER | REAL | BYTES | {"attempts"})


def utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def json_object(data: bytes) -> bool:
    def reject(name: str) -> None:
        raise ValueError(name)

    try:
        return isinstance(json.loads(data.decode(), parse_constant=reject), dict)
    except ValueError:
        return False


def readable(path: Path, seq: int, column: str) -> bool:
    """Whether the stored job is readable after damage to ``column`` (see module doc)."""
    kind, value = raw(path, seq, column)
    if column in CLAIM_WRITES or column in HISTORY:
        return True
    if column == "attempts":
        # What the claim's `attempts = attempts + 1` stores, INTEGER affinity and all.
        conn = connect(path)
        try:
            conn.execute("CREATE TEMP TABLE claimed (attempts INTEGER)")
            conn.execute(
                f"INSERT INTO claimed SELECT attempts + 1 FROM {JOBS} WHERE seq = ?", (seq,)
            )
            (after_claim,) = conn.execute("SELECT typeof(attempts) FROM claimed").fetchone()
        finally:
            conn.close()
        return bool(after_claim == b"integer")
    if kind == "null":
        return column in NULLABLE
    if column in TEXT:
        return kind == "text" and utf8(value) and (column != "headers" or json_object(value))
    if column in INTEGER:
        return kind == "integer" and (column != "priority" or value in (0, 1, 2))
    if column in REAL:
        return kind in ("integer", "real") and math.isfinite(value)
    return kind == "blob" or (kind == "text" and utf8(value))


async def drain(app: Conveyor) -> int:
    worker = Worker(app, burst=True, reaper=False, concurrency=3, poll_interval=0.05)
    return await asyncio.wait_for(worker.run(), 30)


def new_app(path: Path) -> tuple[Conveyor, Any]:
    app = Conveyor(f"sqlite:///{path}?synchronous=normal", settings=load_settings())

    @app.task(name="work", retries=0, timeout=30)
    async def work(*args: Any, **kwargs: Any) -> None:
        pass

    return app, work


async def test_a_burst_worker_drains_a_store_with_one_damaged_job(tmp_path: Path) -> None:
    # Given six jobs, the third with garbage JSON in its headers
    path = tmp_path / "worker.db"
    app = Conveyor(f"sqlite:///{path}", settings=load_settings())
    ran: list[int] = []

    @app.task(retries=0)
    async def count(n: int) -> None:
        ran.append(n)

    handles = [count.enqueue(n) for n in range(6)]
    damage(path, handles[2].id, "headers", '{"correlation_id": ')
    try:
        # When a burst worker drains the store
        assert await drain(app) == 0

        # Then every healthy job succeeded and the damaged one is quarantined
        assert sorted(ran) == [0, 1, 3, 4, 5]
        states = [h.info().state.value for h in handles]
        assert states == ["succeeded"] * 2 + ["dead"] + ["succeeded"] * 3
        bad = handles[2].info()
        assert bad.unreadable is not None and bad.last_error is not None
        assert bad.last_error.startswith(UNREADABLE) and "'headers'" in bad.last_error
        assert bad.raw is not None and bad.raw["headers"] == '{"correlation_id": '
    finally:
        await app.aclose()


#: A value to write: bytes (a BLOB), bytes as TEXT, text, a number or NULL.
VALUES = st.one_of(
    st.binary(max_size=24),
    st.binary(min_size=1, max_size=24).map(NotUtf8),
    st.text(max_size=24),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.none(),
    st.sampled_from(["{}", '{"a": 1}', "[]", "NaN", '{"x": NaN}', "1.5", "ready"]),
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    healthy=st.integers(min_value=2, max_value=5),
    position=st.integers(min_value=0, max_value=5),
    column=st.sampled_from(COLUMNS),
    value=VALUES,
)
def test_random_damage_to_one_job_costs_at_most_that_job(
    healthy: int, position: int, column: str, value: Any
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(scenario(Path(tmp) / "p.db", healthy, min(position, healthy), column, value))


async def scenario(path: Path, healthy: int, position: int, column: str, value: Any) -> None:
    # Given healthy jobs with one damaged job among them
    app, work = new_app(path)
    try:
        ids = [work.enqueue(n).id for n in range(healthy + 1)]
        bad = seq_of(path, ids[position])
        try:
            damage(path, ids[position], column, value)
        except sqlite3.IntegrityError:
            note("the schema refused this value: nothing was damaged")
        was = raw(path, bad, column)
        expect_readable = readable(path, bad, column)
        note(f"stored {was!r}; readable: {expect_readable}")

        # When a burst worker drains the store, it exits normally
        assert await drain(app) == 0

        # Then every healthy job succeeded
        others = [seq_of(path, job_id) for n, job_id in enumerate(ids) if n != position]
        assert [row_of(path, seq)["state"] for seq in others] == [b"succeeded"] * healthy
        # And the damaged one is quarantined exactly when it cannot be read
        row = row_of(path, bad)
        error = (row["last_error"] or b"").decode("utf-8", "replace")
        if expect_readable:
            assert row["state"] in (b"succeeded", b"dead") and not error.startswith(UNREADABLE)
        else:
            assert row["state"] == b"dead" and error.startswith(UNREADABLE)
            assert f"'{column}'" in error
            if column != "attempts":  # the claim's +1 rewrote it
                assert raw(path, bad, column) == was
    finally:
        await app.aclose()
