"""Jobs and workers to and from the flat field lists the Lua scripts take and return."""

from __future__ import annotations

import json
from typing import Any

import orjson

from conveyor.job import JobRecord, NewJob, Priority, State, WorkerInfo


def job_args(job: NewJob) -> list[Any]:
    """The 10 ARGV fields enqueue.lua reads per job."""
    return [
        job.id,
        job.task,
        job.queue,
        int(job.priority),
        job.payload,
        # Header values were checked when the job was built (JSON types, no NaN).
        orjson.dumps(job.headers) if job.headers else "{}",
        job.max_retries,
        repr(float(job.timeout)),
        "" if job.run_at is None else repr(float(job.run_at)),
        "" if job.unique_key is None else "u" + job.unique_key,
    ]


#: Field values to enum members without an enum call per job (unknown ones fall back).
_PRIORITIES = {str(int(p)).encode(): p for p in Priority}
_STATES = {s.value.encode(): s for s in State}


def _float(value: bytes | None) -> float | None:
    return None if value is None else float(value)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _headers(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)  # what older code accepted (NaN, huge integers)


def record(flat: list[bytes] | dict[bytes, bytes]) -> JobRecord:
    """A `JobRecord` from a job hash's HGETALL: a script's flat list or redis-py's dict."""
    # One dict keyed by the raw field names: this runs once per claimed job.
    if isinstance(flat, dict):
        f = flat
    else:
        pairs = iter(flat)
        f = dict(zip(pairs, pairs, strict=True))
    get = f.get
    priority = _PRIORITIES.get(f[b"priority"])
    if priority is None:  # Priority.HIGH is 0: test for None, not truth
        priority = Priority(int(f[b"priority"]))
    state = _STATES.get(f[b"state"]) or State(f[b"state"].decode())
    return JobRecord(
        id=f[b"id"].decode(),
        task=f[b"task"].decode(),
        queue=f[b"queue"].decode(),
        priority=priority,
        state=state,
        payload=f[b"payload"],
        headers=_headers(f[b"headers"]),
        attempts=int(f[b"attempts"]),
        max_retries=int(f[b"max_retries"]),
        timeout=float(f[b"timeout"]),
        run_at=float(f[b"run_at"]),
        created_at=float(f[b"created_at"]),
        updated_at=float(f[b"updated_at"]),
        unique_key=_text(get(b"unique_key")),
        recoveries=int(f[b"recoveries"]),
        lease_token=_text(get(b"lease_token")),
        lease_expires_at=_float(get(b"lease_expires_at")),
        worker_id=_text(get(b"worker_id")),
        started_at=_float(get(b"started_at")),
        finished_at=_float(get(b"finished_at")),
        last_error=_text(get(b"last_error")),
        traceback=_text(get(b"traceback")),
        result=get(b"result"),
        failed_at=_float(get(b"failed_at")),
    )


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
        stats=d.get("stats") or {},
    )
