"""Writing damage straight into a real PostgreSQL store, and reading the rows back raw.

The damage tests bypass Conveyor entirely on the writing side (psycopg on a connection of
their own), as another program, a hand edit or a bad migration would.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from conveyor.job import JobRecord

#: The reason a quarantined job's last_error starts with.
UNREADABLE = "unreadable_record"


def write(base: str, schema: str, statement: str, params: dict[str, Any] | None = None) -> None:
    """Run ``statement`` with ``{s}`` standing for the quoted schema."""
    # Plain text replacement: damage is JSON, whose braces SQL composition would misread.
    text = statement.replace("{s}", '"' + schema.replace('"', '""') + '"')
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(text.encode(), params or {})


def damage(base: str, schema: str, job_id: str, assignments: str) -> None:
    """``UPDATE jobs SET <assignments>`` for one job."""
    write(base, schema, "UPDATE {s}.jobs SET " + assignments + " WHERE id = %(id)s", {"id": job_id})


def raw(base: str, schema: str, job_id: str, *columns: str) -> dict[str, Any]:
    """Columns of one stored job as PostgreSQL's own text (what the store really holds)."""
    picks = sql.SQL(", ").join(
        sql.SQL("{}::text AS {}").format(sql.Identifier(c), sql.Identifier(c)) for c in columns
    )
    query = sql.SQL("SELECT {} FROM {}.jobs WHERE id = %(id)s").format(
        picks, sql.Identifier(schema)
    )
    with psycopg.connect(base, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(query, {"id": job_id})
        row = cur.fetchone()
    assert row is not None, f"job {job_id} is gone"
    return dict(zip(columns, row, strict=True))


def assert_quarantined(base: str, schema: str, job_id: str, field: str) -> dict[str, Any]:
    """The job is dead as unreadable, naming itself and ``field``, its lease dropped."""
    row = raw(base, schema, job_id, "state", "last_error", "failed_at", "lease_token")
    assert row["state"] == "dead", row
    error = row["last_error"] or ""
    assert error.startswith(UNREADABLE), error
    assert job_id in error and repr(field) in error, error
    assert row["failed_at"] is not None and row["lease_token"] is None, row
    return row


def assert_placeholder(record: JobRecord | None, job_id: str, field: str) -> None:
    """A read returned the damaged job as a placeholder that says what is wrong."""
    assert record is not None and record.id == job_id
    assert record.unreadable is not None and repr(field) in record.unreadable, record
    assert record.raw is not None and field in record.raw, record.raw


def deep_json(depth: int) -> str:
    """A JSON object holding arrays nested ``depth`` deep (PostgreSQL accepts it)."""
    return '{"a": ' + "[" * depth + "]" * depth + "}"
