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


def record(flat: list[bytes] | dict[bytes, bytes]) -> JobRecord:
    """A `JobRecord` from a job hash's HGETALL: a script's flat list or redis-py's dict."""
    f = flat if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2], strict=True))
    text = {k.decode(): v for k, v in f.items() if k not in (b"payload", b"result")}

    def s(name: str) -> str:
        return text[name].decode()

    def opt_float(name: str) -> float | None:
        value = text.get(name)
        return None if value is None else float(value)

    def opt_text(name: str) -> str | None:
        value = text.get(name)
        return None if value is None else value.decode()

    return JobRecord(
        id=s("id"),
        task=s("task"),
        queue=s("queue"),
        priority=Priority(int(text["priority"])),
        state=State(s("state")),
        payload=f[b"payload"],
        headers=json.loads(text["headers"]),
        attempts=int(text["attempts"]),
        max_retries=int(text["max_retries"]),
        timeout=float(text["timeout"]),
        run_at=float(text["run_at"]),
        created_at=float(text["created_at"]),
        updated_at=float(text["updated_at"]),
        unique_key=opt_text("unique_key"),
        recoveries=int(text["recoveries"]),
        lease_token=opt_text("lease_token"),
        lease_expires_at=opt_float("lease_expires_at"),
        worker_id=opt_text("worker_id"),
        started_at=opt_float("started_at"),
        finished_at=opt_float("finished_at"),
        last_error=opt_text("last_error"),
        traceback=opt_text("traceback"),
        result=f.get(b"result"),
        failed_at=opt_float("failed_at"),
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
