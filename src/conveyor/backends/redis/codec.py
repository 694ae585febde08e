"""Jobs and workers to and from the flat field lists the Lua scripts take and return."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from conveyor.attempts import Attempt, JobProgress, entry_texts, parse_log, parse_progress
from conveyor.backends.unreadable import (
    UnreadableRecord,
    field,
    integer,
    number,
    placeholder,
    text,
)
from conveyor.job import JobRecord, Priority, State, WorkerInfo


def log_texts(error: str | None, traceback: str | None) -> str:
    """The ``"error"`` and ``"traceback"`` members of an attempt log entry, as JSON text
    cut to the log's bounds (`conveyor.attempts.entry_texts`): fail.lua and recover.lua
    write the rest of the entry around them."""
    error, traceback = entry_texts(error, traceback)
    return json.dumps({"error": error, "traceback": traceback}, separators=(",", ":"))[1:-1]


def progress_members(done: float, total: float | None, note: str | None) -> str:
    """The ``"done"``, ``"total"`` and ``"note"`` members of a progress report, as JSON
    text (the values come checked: `conveyor.attempts.check_progress`); progress.lua adds
    the attempt and the store's now."""
    members = {"done": done, "total": total, "note": note}
    return json.dumps(members, separators=(",", ":"), allow_nan=False)[1:-1]


def attempt_log(raw: bytes) -> tuple[Attempt, ...]:
    """A job hash's ``attempt_log``: what can be read of it, never an error (a damaged log
    reads as empty or loses only its unreadable entries)."""
    return parse_log(raw.decode("utf-8", "replace"))


def progress(raw: bytes) -> JobProgress | None:
    """A job hash's ``progress``, or None when it cannot be read."""
    return parse_progress(raw.decode("utf-8", "replace"))


#: Field values to enum members without an enum call per job (unknown ones fall back).
_PRIORITIES = {str(int(p)).encode(): p for p in Priority}
_STATES = {s.value.encode(): s for s in State}


def _float(value: bytes | None) -> float | None:
    if value is None:
        return None
    x = float(value)
    if x - x:  # nan or inf: x - x is nan, which is true
        raise ValueError(f"{x!r} is not a finite number")
    return x


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _headers(raw: bytes) -> Any:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = json.loads(raw)  # what older code accepted (NaN, huge integers)
    if type(value) is not dict:
        raise ValueError(f"headers must be a JSON object, found {type(value).__name__}")
    return value


#: A payload of positional arguments only, around its arguments' JSON array: a record
#: keeps such a payload as that array alone, in an ``args`` field instead of ``payload``
#: (`bare_args`, `whole_payload`), 24 bytes less for a small job.
_ARGS_HEAD = b'{"args":'
_ARGS_TAIL = b',"kwargs":{}}'


def bare_args(payload: bytes) -> bytes | None:
    """The part of ``payload`` an ``args`` field keeps, or None for a payload kept whole:
    the bytes between `_ARGS_HEAD` and `_ARGS_TAIL`, so `whole_payload` gives back
    exactly ``payload``, whatever it holds."""
    if (
        len(payload) > len(_ARGS_HEAD) + len(_ARGS_TAIL)
        and payload.startswith(_ARGS_HEAD)
        and payload.endswith(_ARGS_TAIL)
    ):
        return payload[len(_ARGS_HEAD) : -len(_ARGS_TAIL)]
    return None


def whole_payload(f: dict[bytes, bytes]) -> bytes | None:
    """A record's payload: its ``payload`` field, else its ``args`` field made whole
    again, else None (missing)."""
    payload = f.get(b"payload")
    if payload is None and (args := f.get(b"args")) is not None:
        return _ARGS_HEAD + args + _ARGS_TAIL
    return payload


def stored(flat: list[bytes] | dict[bytes, bytes]) -> dict[bytes, bytes]:
    """A job hash's fields by raw name, from a script's flat list or redis-py's dict."""
    if isinstance(flat, dict):
        return flat
    pairs = iter(flat)
    return dict(zip(pairs, pairs, strict=False))


def record(flat: list[bytes] | dict[bytes, bytes], key_id: bytes | None = None) -> JobRecord:
    """A `JobRecord` from a job hash's HGETALL: a script's flat list or redis-py's dict.

    ``key_id`` is the id in the hash's key; an ``id`` field, which records written
    before the lean enqueue (`DEFAULTS`) hold, must repeat it. Raises `UnreadableRecord`,
    naming the first field that cannot be read, for a damaged record.
    """
    # One dict keyed by the raw field names: this runs once per claimed job.
    f = stored(flat)
    try:
        job = _fast(f, key_id)
    except Exception:  # noqa: BLE001 - decoded again, field by field, to name the damage
        return careful(f, key_id)
    # Cheap checks the fast decode leaves out: a finite sum means finite times, and the
    # record must be the one its key names.
    total = job.timeout + job.run_at + job.created_at + job.updated_at
    if total - total or (key_id is not None and f.get(b"id", key_id) != key_id):
        return careful(f, key_id)
    return job


#: What a left-out ``max_retries`` and ``timeout`` mean: the built-in defaults (settings
#: ``max_retries`` and ``job_timeout``), which most jobs have. Part of the store's format,
#: fixed whatever those settings' defaults become: a record written with other values
#: holds them.
DEFAULT_MAX_RETRIES = 3
DEFAULT_TIMEOUT = 300.0

#: Fields enqueue.lua leaves out while they hold their first or default value, and what
#: that is: a queued job's record holds only what a claim needs (the later scripts write
#: what changes). ``id`` is the key's; ``updated_at`` is ``created_at``, and so is
#: ``run_at`` (left out for a job enqueued to run now).
DEFAULTS = {
    b"attempts": b"0",
    b"recoveries": b"0",
    b"headers": b"{}",
    b"max_retries": str(DEFAULT_MAX_RETRIES).encode(),
    b"timeout": repr(DEFAULT_TIMEOUT).encode(),
}


def _fast(f: dict[bytes, bytes], key_id: bytes | None) -> JobRecord:
    get = f.get
    priority = _PRIORITIES.get(f[b"priority"])
    if priority is None:  # Priority.HIGH is 0: test for None, not truth
        priority = Priority(int(f[b"priority"]))
    state = _STATES.get(f[b"state"]) or State(f[b"state"].decode())
    created_at = float(f[b"created_at"])
    raw_headers = get(b"headers")
    updated = get(b"updated_at")
    run_at = get(b"run_at")
    return JobRecord(
        id=(get(b"id") or key_id or f[b"id"]).decode(),
        task=f[b"task"].decode(),
        queue=f[b"queue"].decode(),
        priority=priority,
        state=state,
        payload=f[b"payload"] if (payload := whole_payload(f)) is None else payload,
        headers={} if raw_headers is None else _headers(raw_headers),
        attempts=int(get(b"attempts", 0)),
        max_retries=int(get(b"max_retries", DEFAULT_MAX_RETRIES)),
        timeout=float(get(b"timeout", DEFAULT_TIMEOUT)),
        run_at=created_at if run_at is None else float(run_at),
        created_at=created_at,
        updated_at=created_at if updated is None else float(updated),
        unique_key=_text(get(b"unique_key")),
        recoveries=int(get(b"recoveries", 0)),
        lease_token=_text(get(b"lease_token")),
        lease_expires_at=_float(get(b"lease_expires_at")),
        worker_id=_text(get(b"worker_id")),
        started_at=_float(get(b"started_at")),
        finished_at=_float(get(b"finished_at")),
        last_error=_text(get(b"last_error")),
        traceback=_text(get(b"traceback")),
        result=get(b"result"),
        failed_at=_float(get(b"failed_at")),
        # Absent until a job first fails or reports progress: nothing to read then.
        attempt_log=() if (log := get(b"attempt_log")) is None else attempt_log(log),
        progress=None if (report := get(b"progress")) is None else progress(report),
    )


def _priority(raw: Any) -> Priority:
    return Priority(integer(raw))


def _state(raw: Any) -> State:
    return State(text(raw))


def _bytes(raw: Any) -> bytes:
    return bytes(raw)


#: Every field the fast decode reads, with its decoder; the required ones come first.
_REQUIRED: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("id", text),
    ("task", text),
    ("queue", text),
    ("priority", _priority),
    ("state", _state),
    ("payload", _bytes),
    ("headers", _headers),
    ("attempts", integer),
    ("max_retries", integer),
    ("timeout", number),
    ("run_at", number),
    ("created_at", number),
    ("updated_at", number),
    ("recoveries", integer),
)
_OPTIONAL: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("unique_key", text),
    ("lease_token", text),
    ("lease_expires_at", number),
    ("worker_id", text),
    ("started_at", number),
    ("finished_at", number),
    ("last_error", text),
    ("traceback", text),
    ("result", _bytes),
    ("failed_at", number),
)


def careful(f: dict[bytes, bytes], key_id: bytes | None) -> JobRecord:
    """`record`'s slow path: each field decoded on its own, so damage names its field.

    The rules are `_fast`'s, which hands a record here whenever it is in doubt (any error,
    a time that is not finite, an id that is not its key's); this path decides. Raises
    `UnreadableRecord`."""
    job_id = _job_id(f, key_id)
    meaning = left_out(f)
    values: dict[str, Any] = {}
    for name, decode in _REQUIRED:
        raw = f.get(name.encode())
        source = name  # the field the value was read from, named when it is damaged
        if raw is None and name == "payload":
            raw = whole_payload(f)
        if raw is None and name == "id" and key_id is not None:
            raw = key_id
        if raw is None:
            raw = meaning.get(name)
            if name in _FROM_CREATED:
                source = "created_at"
        if raw is None:
            raise UnreadableRecord(job_id, source, "the field is missing")
        values[name] = field(job_id, source, decode, raw)
    for name, decode in _OPTIONAL:
        raw = f.get(name.encode())
        values[name] = None if raw is None else field(job_id, name, decode, raw)
    if key_id is not None and f.get(b"id", key_id) != key_id:
        raise UnreadableRecord(
            job_id, "id", f"it names job {values['id']!r}, but the record is stored as {job_id!r}"
        )
    # Read as far as they can be, never making the record unreadable.
    log, report = f.get(b"attempt_log"), f.get(b"progress")
    values["attempt_log"] = () if log is None else attempt_log(log)
    values["progress"] = None if report is None else progress(report)
    return JobRecord(**values)


def _job_id(f: dict[bytes, bytes], key_id: bytes | None) -> str:
    raw = key_id if key_id is not None else f.get(b"id", b"")
    return raw.decode("utf-8", "backslashreplace")


def readable(job_id: str, flat: list[bytes] | dict[bytes, bytes]) -> JobRecord:
    """The record stored as ``job_id``, or a placeholder for one that cannot be read
    (reads show damage; only a claim quarantines it)."""
    f = stored(flat)
    try:
        return record(f, job_id.encode())
    except UnreadableRecord as exc:
        return placeholder(job_id, f, exc, left_out=left_out(f))


#: Fields a lean record leaves out while they equal its ``created_at``.
_FROM_CREATED = ("run_at", "updated_at")


def left_out(f: dict[bytes, bytes]) -> dict[str, bytes]:
    """What the fields a lean record leaves out mean (`DEFAULTS`; ``run_at`` and
    ``updated_at`` are ``created_at``): the careful decode reads a missing field as this, and
    so does the placeholder of a record that cannot be read."""
    meaning = {name.decode(): value for name, value in DEFAULTS.items()}
    created = f.get(b"created_at")
    if created is not None:
        meaning |= dict.fromkeys(_FROM_CREATED, created)
    return meaning


def worker_json(info: WorkerInfo) -> str:
    """A worker's registry entry (``last_seen`` is added by the script, on its clock)."""
    return json.dumps(
        {
            "id": info.id,
            "host": info.host,
            "pid": info.pid,
            "started_at": info.started_at,
            "pool": info.pool,
            "queues": None if info.queues is None else list(info.queues),
            "stats": info.stats,
        },
        separators=(",", ":"),
        default=str,
    )


def worker_info(entry: bytes) -> WorkerInfo:
    """A `WorkerInfo` from ``last_seen|json``."""
    seen, _, body = entry.partition(b"|")
    d: dict[str, Any] = json.loads(body)
    queues = d.get("queues")
    return WorkerInfo(
        id=d["id"],
        host=d["host"],
        pid=int(d["pid"]),
        started_at=float(d["started_at"]),
        last_seen=float(seen),
        pool=d.get("pool"),
        queues=None if queues is None else tuple(queues),
        stats=_object(d.get("stats") or {}),
    )


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, found {type(value).__name__}")
    return value
