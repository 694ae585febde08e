"""Rows of the jobs and workers tables to records, one row at a time, damage included.

The column types keep most damage out (text in a number column, bytes that are not UTF-8 in
a text column, invalid JSON, a priority or state outside its CHECK), but not all of it: a
``jsonb`` column holds any JSON value (an array where an object belongs, a number with
thousands of digits, nesting deeper than Python's parser goes), a ``float8`` column holds
``NaN`` and ``±Infinity``, and an ``integer`` holds a negative count. Such a row, written by
hand, by another program or by a bad migration, must cost one job, never a claim.

* ``jsonb`` columns reach Python as text (`JsonText`, registered per cursor by
  `raw_json`), so psycopg never parses them while fetching: one bad document would
  otherwise fail the whole fetch, after the claim had already committed.
* `to_record` is the fast path: build the record, check the few values the column types do
  not bound, and only on a problem decode field by field (`decode_record`) to name the
  field in an `UnreadableRecord`.
* `record_or_placeholder` is for reads: a damaged row comes back as
  `unreadable.placeholder`, never an error. `to_worker` raises `UnreadableRecord` for a
  registry row the caller then skips.
* A job's story (``attempt_log``, ``progress``) is read leniently on both paths
  (`conveyor.attempts.parse_log`, ``parse_progress``, which never raise): a damaged log or
  report reads as empty, never as an
  unreadable job, for it is history about the job and not what the worker runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.adapt import Loader

from conveyor.attempts import parse_log, parse_progress
from conveyor.backends import unreadable
from conveyor.backends.postgres.rows import Row
from conveyor.backends.unreadable import UnreadableRecord
from conveyor.job import JobRecord, Priority, State, WorkerInfo

#: Columns a claim result carries that are not part of the stored job.
_NOT_STORED = frozenset({"due"})


class JsonText(Loader):
    """Loads ``jsonb`` as its text, for our own strict decoding (`json_object`)."""

    def load(self, data: Any) -> str:
        return bytes(data).decode("utf-8")


def raw_json(cursor: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]) -> None:
    """Make ``cursor`` return ``jsonb`` columns as text instead of parsing them."""
    cursor.adapters.register_loader("jsonb", JsonText)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} does not fit a float")
    return value


# PostgreSQL's numeric has far more range than a float (1e400 would come back as inf, which
# strict JSON cannot write back), and int() refuses more than 4300 digits: both are damage.
_JSON = json.JSONDecoder(parse_float=_finite_float)


def json_object(raw: Any) -> dict[str, Any]:
    """A JSON object stored as ``jsonb`` text: a ``dict``, or an error saying what it is."""
    value = _JSON.decode(unreadable.text(raw))
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object, found a JSON {_json_kind(value)}")
    return value


def _json_kind(value: object) -> str:
    kinds = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _count(raw: Any) -> int:
    value = unreadable.integer(raw)
    if value < 0:
        raise ValueError(f"{value} is negative; a count is never below 0")
    return value


def _timeout(raw: Any) -> float:
    value = unreadable.number(raw)
    if value <= 0:
        raise ValueError(f"{value!r} is not a positive number of seconds")
    return value


def _blob(raw: Any) -> bytes:
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, found {type(raw).__name__}")
    return bytes(raw)


def _optional(decode: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda raw: None if raw is None else decode(raw)


#: How each column of the jobs table is read, in the careful path. The rules: text is text;
#: counts are never negative; every time is a finite number; a timeout is a positive one;
#: headers are a JSON object that strict JSON can write back; the story is read leniently.
JOB_FIELDS: dict[str, Callable[[Any], Any]] = {
    "task": unreadable.text,
    "queue": unreadable.text,
    "priority": lambda raw: Priority(unreadable.integer(raw)),
    "state": lambda raw: State(unreadable.text(raw)),
    "payload": _blob,
    "headers": json_object,
    "attempts": _count,
    "max_retries": _count,
    "timeout": _timeout,
    "run_at": unreadable.number,
    "created_at": unreadable.number,
    "updated_at": unreadable.number,
    "unique_key": _optional(unreadable.text),
    "recoveries": _count,
    "lease_token": _optional(unreadable.text),
    "lease_expires_at": _optional(unreadable.number),
    "worker_id": _optional(unreadable.text),
    "started_at": _optional(unreadable.number),
    "finished_at": _optional(unreadable.number),
    "last_error": _optional(unreadable.text),
    "traceback": _optional(unreadable.text),
    "result": _optional(_blob),
    "failed_at": _optional(unreadable.number),
    "attempt_log": parse_log,
    "progress": parse_progress,
}


def to_record(row: Row) -> JobRecord:
    """A `JobRecord` from a row of the jobs table, or `UnreadableRecord` naming the field."""
    try:
        record = _fast(row)
    except Exception:  # noqa: BLE001 - the careful path below names the field
        return decode_record(row)
    return record if _sound(record) else decode_record(row)


def _fast(row: Row) -> JobRecord:
    result = row["result"]
    return JobRecord(
        id=row["id"],
        task=row["task"],
        queue=row["queue"],
        priority=Priority(row["priority"]),
        state=State(row["state"]),
        payload=bytes(row["payload"]),
        headers=_JSON.decode(row["headers"]),
        attempts=row["attempts"],
        max_retries=row["max_retries"],
        timeout=row["timeout"],
        run_at=row["run_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        unique_key=row["unique_key"],
        recoveries=row["recoveries"],
        lease_token=row["lease_token"],
        lease_expires_at=row["lease_expires_at"],
        worker_id=row["worker_id"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        last_error=row["last_error"],
        traceback=row["traceback"],
        result=None if result is None else bytes(result),
        failed_at=row["failed_at"],
        attempt_log=parse_log(row["attempt_log"]),
        progress=parse_progress(row["progress"]),
    )


def _sound(r: JobRecord) -> bool:
    """Whether the values the column types leave unbounded are within the rules above."""
    finite = math.isfinite
    return (
        type(r.headers) is dict
        and r.attempts >= 0
        and r.max_retries >= 0
        and r.recoveries >= 0
        and r.timeout > 0
        and finite(r.timeout)
        and finite(r.run_at)
        and finite(r.created_at)
        and finite(r.updated_at)
        and (r.lease_expires_at is None or finite(r.lease_expires_at))
        and (r.started_at is None or finite(r.started_at))
        and (r.finished_at is None or finite(r.finished_at))
        and (r.failed_at is None or finite(r.failed_at))
    )


def decode_record(row: Row) -> JobRecord:
    """The careful path: every field on its own, the first bad one named."""
    job_id = unreadable.field(str(row.get("id")), "id", unreadable.text, row["id"])
    values = {
        name: unreadable.field(job_id, name, decode, row[name])
        for name, decode in JOB_FIELDS.items()
    }
    return JobRecord(id=job_id, **values)


def decode_claimed(rows: list[Row]) -> tuple[list[JobRecord], list[UnreadableRecord]]:
    """The claimed rows that can be read, and what is wrong with the others."""
    records: list[JobRecord] = []
    damaged: list[UnreadableRecord] = []
    for row in rows:
        if row["id"] is None:
            continue  # the claim's "nothing claimed" row
        try:
            records.append(to_record(row))
        except UnreadableRecord as exc:
            damaged.append(exc)
    return records, damaged


def stored(row: Row) -> Row:
    """The stored columns of a row (what a placeholder shows as ``raw``)."""
    return {k: v for k, v in row.items() if k not in _NOT_STORED}


def record_or_placeholder(row: Row) -> JobRecord:
    """For reads: the record, or a placeholder saying what cannot be read."""
    try:
        return to_record(row)
    except UnreadableRecord as exc:
        return unreadable.placeholder(exc.job_id, stored(row), exc)


def to_worker(row: Row) -> WorkerInfo:
    """A `WorkerInfo` from a row of the workers table, or `UnreadableRecord`."""
    worker_id = unreadable.field(str(row.get("id")), "id", unreadable.text, row["id"])

    def read(name: str, decode: Callable[[Any], Any]) -> Any:
        return unreadable.field(worker_id, name, decode, row[name])

    queues = read("queues", _optional(_texts))
    return WorkerInfo(
        id=worker_id,
        host=read("host", unreadable.text),
        pid=read("pid", unreadable.integer),
        started_at=read("started_at", unreadable.number),
        last_seen=read("last_seen", unreadable.number),
        pool=read("pool", _optional(unreadable.text)),
        queues=queues,
        stats=read("stats", json_object),
    )


def _texts(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise TypeError(f"expected an array of text, found {type(raw).__name__}")
    return tuple(unreadable.text(item) for item in raw)
