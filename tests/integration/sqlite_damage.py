"""Writing damage straight into a real SQLite store, as another program (or a bad disk) would.

SQLite types values, not columns, so a plain ``UPDATE`` can leave text in a REAL column, a
BLOB in a TEXT column or TEXT whose bytes are not UTF-8 (``CAST(? AS TEXT)`` of bytes).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.backends.sqlite.sql import NAMES
from conveyor.job import NewJob, Priority

JOBS = NAMES["jobs"]


@dataclass(frozen=True)
class NotUtf8:
    """Bytes to store as TEXT (not a BLOB), which is what breaks a UTF-8 decoder."""

    data: bytes


def new_job(task: str = "t", **fields: Any) -> NewJob:
    """A healthy job whose payload the worker can decode."""
    return NewJob(
        task=task,
        queue=fields.pop("queue", "q"),
        priority=fields.pop("priority", Priority.NORMAL),
        payload=b'{"args":[],"kwargs":{}}',
        max_retries=0,
        timeout=30.0,
        **fields,
    )


def connect(path: Path) -> sqlite3.Connection:
    """A plain connection of our own on the store's file (autocommit)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.text_factory = bytes  # read back exactly what is stored, whatever it is
    return conn


def write(path: Path, table: str, column: str, value: Any, where: str, *args: Any) -> None:
    """``UPDATE table SET column = value WHERE ...``; `NotUtf8` is written as TEXT."""
    expr = "CAST(? AS TEXT)" if isinstance(value, NotUtf8) else "?"
    stored = value.data if isinstance(value, NotUtf8) else value
    conn = connect(path)
    try:
        if table == JOBS and column in ("priority", "state"):
            conn.execute("PRAGMA ignore_check_constraints = ON")
        conn.execute(f"UPDATE {table} SET {column} = {expr} WHERE {where}", (stored, *args))
    finally:
        conn.close()


def damage(path: Path, job_id: str, column: str, value: Any) -> None:
    """Write ``value`` into one column of one job."""
    write(path, JOBS, column, value, "id = ?", job_id)


def raw(path: Path, seq: int, column: str) -> tuple[str, Any]:
    """A job column's storage class and value exactly as stored (TEXT as bytes)."""
    conn = connect(path)
    try:
        query = f"SELECT typeof({column}), {column} FROM {JOBS} WHERE seq = ?"
        kind, value = conn.execute(query, (seq,)).fetchone()
    finally:
        conn.close()
    return kind.decode(), value


def row_of(path: Path, seq: int) -> dict[str, Any]:
    """Every column of one job row (TEXT as bytes), by its seq."""
    conn = connect(path)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute(f"SELECT * FROM {JOBS} WHERE seq = ?", (seq,)).fetchone()
    finally:
        conn.close()
    return {key: row[key] for key in row.keys()}  # noqa: SIM118 - Row has no iter of keys


def seq_of(path: Path, job_id: str) -> int:
    """A job's seq (stable whatever its other columns hold)."""
    conn = connect(path)
    try:
        (seq,) = conn.execute(f"SELECT seq FROM {JOBS} WHERE id = ?", (job_id,)).fetchone()
    finally:
        conn.close()
    return int(seq)
