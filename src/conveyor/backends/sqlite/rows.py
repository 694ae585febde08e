"""Stored rows into records, one field at a time, so one damaged row costs one job (and
`to_json`, the one way values are written into the JSON columns).

SQLite types values, not columns: a damaged file (or a hand-written UPDATE) can leave text
in a REAL column, a BLOB in a TEXT column, or TEXT whose bytes are not UTF-8. The
connection reads every TEXT value with ``surrogateescape`` (`text_factory`), so reading a
row never fails; the decoders here then check each value against its column's declared
type and raise, naming the field, when it does not fit.

Which values a job row may hold (the definition the damage tests rely on):

* TEXT columns hold TEXT that is valid UTF-8 (never a BLOB); ``headers`` is a JSON object
  (no NaN); ``state`` and ``priority`` are known values.
* INTEGER columns hold an INTEGER; REAL columns an INTEGER or a finite REAL.
* ``payload`` and ``result`` are BLOBs of any bytes (the worker judges a payload's content
  and dead-letters one it cannot decode), or TEXT of valid UTF-8.
* NULL only where the schema allows it.
* ``last_error``, ``traceback``, ``failed_at`` and ``finished_at`` only describe an earlier
  attempt (and a quarantine writes them), so damage there is shown as best it can be and
  never costs the job.
* ``attempt_log`` and ``progress`` (JSON text, or NULL) only tell the job's story: a value
  that cannot be read is an empty log (entries that cannot be read are skipped) and no
  progress, never a damaged record (`conveyor.attempts.parse_log`, ``parse_progress``).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable
from typing import Any, TypeGuard

from conveyor.attempts import Attempt, JobProgress, parse_log, parse_progress
from conveyor.backends.unreadable import UnreadableRecord, placeholder
from conveyor.errors import SerializationError
from conveyor.job import JobRecord, Priority, State, WorkerInfo

Decoder = Callable[[Any], Any]


def to_json(value: Any, what: str) -> str:
    """``value`` as compact JSON text for a JSON column; ``what`` names it if it cannot be."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"{what} cannot be stored as JSON: {exc}") from exc


def text_factory(raw: bytes) -> str:
    """How the connection reads TEXT: never fails; bytes that are not UTF-8 become surrogates.

    `text` below (and `conveyor.backends.unreadable.text`) reject such strings, so damage
    is found where one record is decoded instead of failing a whole fetch.
    """
    return raw.decode("utf-8", "surrogateescape")


def kind(value: Any) -> str:
    """The SQLite storage class of a value as the driver returns it."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "TEXT"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "BLOB"
    if isinstance(value, int):
        return "INTEGER"
    if isinstance(value, float):
        return "REAL"
    return type(value).__name__


def original(value: Any) -> Any:
    """A stored value as stored: TEXT that was not UTF-8 goes back to its bytes."""
    if isinstance(value, str) and not value.isascii():
        return value.encode("utf-8", "surrogateescape")
    return value


def shown(value: Any) -> str:
    """Any stored value as printable text (for names in logs and listings)."""
    raw = original(value)
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw).decode("utf-8", "backslashreplace")
    return str(raw)


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_text(value: Any) -> TypeGuard[str]:
    """Whether a stored value is TEXT of valid UTF-8 (safe to show, and to bind again)."""
    return type(value) is str and (value.isascii() or _utf8(value))


def text(value: Any) -> str:
    """A TEXT column's value: TEXT of valid UTF-8."""
    if type(value) is str and (value.isascii() or _utf8(value)):  # `is_text`, inlined: hot
        return value
    if isinstance(value, str):
        raise ValueError("TEXT that is not valid UTF-8")
    raise TypeError(f"expected TEXT, found {kind(value)}")


def text_or_null(value: Any) -> str | None:
    """A nullable TEXT column's value."""
    return None if value is None else text(value)


def integer(value: Any) -> int:
    """An INTEGER column's value."""
    if type(value) is int:
        return value
    raise TypeError(f"expected an INTEGER, found {kind(value)}")


def real(value: Any) -> float:
    """A REAL column's value: an INTEGER or a finite REAL, as a float."""
    if type(value) is float or type(value) is int:
        number = float(value)
        if math.isfinite(number):
            return number
        raise ValueError(f"{number!r} is not a finite number")
    raise TypeError(f"expected a REAL, found {kind(value)}")


def real_or_null(value: Any) -> float | None:
    """A nullable REAL column's value."""
    return None if value is None else real(value)


def number_or_none(value: Any) -> float | None:
    """A REAL that only describes the past: ``None`` when it is missing or not a number."""
    if value is None:
        return None
    try:
        return real(value)
    except (TypeError, ValueError):
        return None


def note(value: Any) -> str | None:
    """Text that only describes the past (an earlier error): shown as best it can be."""
    return None if value is None else name_of(value)


def blob_or_null(value: Any) -> bytes | None:
    """The ``result`` column: NULL, or what `payload` accepts."""
    return None if value is None else payload(value)


def payload(value: Any) -> bytes:
    """The payload: any BLOB (the worker judges its content), or TEXT of valid UTF-8."""
    if type(value) is bytes:
        return value
    return text(value).encode("utf-8")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# One decoder, built once: `json.loads` with any option builds a new one per call.
_JSON = json.JSONDecoder(parse_constant=_no_constant)


def json_object(value: Any) -> dict[str, Any]:
    """A TEXT column holding a JSON object (strict: no NaN or Infinity)."""
    decoded = _JSON.decode(text(value))
    if type(decoded) is not dict:
        raise ValueError(f"expected a JSON object, found {type(decoded).__name__}")
    return decoded


def attempt_log(value: Any) -> tuple[Attempt, ...]:
    """The ``attempt_log`` column: the attempts it holds that can be read; never raises."""
    if value is None:
        return ()  # most jobs: nothing to parse on the claim path
    return parse_log(value if is_text(value) else None)


def progress(value: Any) -> JobProgress | None:
    """The ``progress`` column: the report, or None when it cannot be read; never raises."""
    if value is None:
        return None
    return parse_progress(value if is_text(value) else None)


def state(value: Any) -> State:
    """The ``state`` column."""
    return State(text(value))


def priority(value: Any) -> Priority:
    """The ``priority`` column."""
    return Priority(integer(value))


#: Every column a `JobRecord` is built from, with its decoder.
JOB_FIELDS: tuple[tuple[str, Decoder], ...] = (
    ("id", text),
    ("task", text),
    ("queue", text),
    ("priority", priority),
    ("state", state),
    ("payload", payload),
    ("headers", json_object),
    ("attempts", integer),
    ("max_retries", integer),
    ("timeout", real),
    ("run_at", real),
    ("created_at", real),
    ("updated_at", real),
    ("unique_key", text_or_null),
    ("recoveries", integer),
    ("lease_token", text_or_null),
    ("lease_expires_at", real_or_null),
    ("worker_id", text_or_null),
    ("started_at", real_or_null),
    ("finished_at", number_or_none),
    ("last_error", note),
    ("traceback", note),
    ("result", blob_or_null),
    ("failed_at", number_or_none),
    ("attempt_log", attempt_log),
    ("progress", progress),
)


def job_record(row: sqlite3.Row) -> JobRecord:
    """A job row as a `JobRecord`; `UnreadableRecord` naming the first field that is damaged."""
    try:
        return JobRecord(**{name: decode(row[name]) for name, decode in JOB_FIELDS})
    except Exception:  # noqa: BLE001 - find and name the damaged field below
        raise _locate(row) from None


def _locate(row: sqlite3.Row) -> UnreadableRecord:
    job_id = shown(row["id"])
    for name, decode in JOB_FIELDS:
        value = row[name]
        try:
            decode(value)
        except Exception as exc:  # noqa: BLE001 - any failure is this field's damage
            return UnreadableRecord(job_id, name, f"{exc}; stored {kind(value)} {_preview(value)}")
    return UnreadableRecord(job_id, "record", "the row does not form a job record")


def _preview(value: Any) -> str:
    text_ = repr(original(value))
    return text_ if len(text_) <= 80 else text_[:77] + "..."


def stored(row: sqlite3.Row) -> dict[str, Any]:
    """A row's columns as stored (TEXT that was not UTF-8 as its bytes), for ``raw``."""
    return {name: original(row[name]) for name in row.keys()}  # noqa: SIM118 - Row has no iter of keys


def job_or_placeholder(row: sqlite3.Row) -> JobRecord:
    """A job row as a `JobRecord`, or a placeholder saying what is wrong (reads only)."""
    try:
        return job_record(row)
    except UnreadableRecord as problem:
        return placeholder(problem.job_id, stored(row), problem)


def worker_info(row: sqlite3.Row) -> WorkerInfo:
    """A worker-registry row; `ValueError` or `TypeError` if a column is damaged."""
    queues = None
    if row["queues"] is not None:
        listed = _JSON.decode(text(row["queues"]))
        if not isinstance(listed, list) or not all(isinstance(q, str) for q in listed):
            raise ValueError("queues must be a JSON list of names")
        queues = tuple(listed)
    real(row["expires_at"])  # a damaged expiry is damage too (the next register drops it)
    return WorkerInfo(
        id=text(row["id"]),
        host=text(row["host"]),
        pid=integer(row["pid"]),
        started_at=real(row["started_at"]),
        last_seen=real(row["last_seen"]),
        pool=text_or_null(row["pool"]),
        queues=queues,
        stats=json_object(row["stats"]),
    )


def name_of(value: Any) -> str:
    """A stored name or note for a listing or a log, readable even when damaged."""
    if is_text(value):
        return value
    return shown(value)
