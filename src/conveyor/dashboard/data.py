"""What the pages and the JSON API show, read from the Backend as plain data.

Every function here takes the `Backend` (and a clock) and returns JSON-ready dicts, so a
page and its API route can never disagree. Times are seconds since the epoch.

Jobs and queues come from the store's `Admin` capability (the dashboard requires it);
history and live workers from its `Telemetry`, which a store may not keep: `overview` then
gives ``"workers": None``, and `history` and `workers` raise `Unsupported`.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from conveyor.attempts import JobProgress
from conveyor.backends.capabilities import TOPOLOGY_PREFIX, Scheduling, Telemetry
from conveyor.errors import SerializationError
from conveyor.job import HistoryPoint, JobQuery, JobRecord, Priority, State
from conveyor.serialization import decode_payload_json, decode_value_json

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.backends.base import Backend
    from conveyor.clock import Clock

#: States in life order, as columns.
STATES = (State.SCHEDULED, State.READY, State.RUNNING, State.SUCCEEDED, State.DEAD, State.CANCELLED)
#: Minutes of history the charts show by default, and the most the API returns.
DEFAULT_MINUTES = 60
MAX_MINUTES = 24 * 60
#: The largest offset a job list may ask for (the API refuses more, pages clamp to it):
#: stores take offsets as 64-bit integers at most, and no listing is that long.
MAX_OFFSET = 10**9
PRIORITIES = tuple(p.label for p in Priority)


async def overview(backend: Backend, clock: Clock) -> dict[str, Any]:
    """Totals by state, each queue by priority (paused or not, oldest wait), counters, and
    the number of live workers (``None`` when the store keeps no worker registry)."""
    admin = backend.admin
    stats = await admin.stats()
    paused = set(await admin.paused_queues())
    oldest = await admin.oldest_ready()
    counters = await admin.counters()
    telemetry = backend.supports(Telemetry)
    workers = len(await backend.telemetry.workers()) if telemetry else None
    now = clock.now()
    queues: dict[str, dict[str, Any]] = {}
    for name in sorted({s.queue for s in stats} | paused):
        queues[name] = {
            "name": name,
            "paused": name in paused,
            "oldest_wait": round(max(0.0, now - oldest[name]), 3) if name in oldest else None,
            "priorities": [],
            "ready": dict.fromkeys(PRIORITIES, 0),
            "counts": dict.fromkeys((s.value for s in STATES), 0),
        }
    totals = dict.fromkeys((s.value for s in STATES), 0)
    for row in sorted(stats, key=lambda r: (r.queue, r.priority)):
        counts = {s.value: row.counts.get(s, 0) for s in STATES}
        queue = queues[row.queue]
        queue["priorities"].append({"priority": row.priority.label, "counts": counts})
        queue["ready"][row.priority.label] += counts["ready"]
        for state, n in counts.items():
            queue["counts"][state] += n
            totals[state] += n
    return {
        "now": now,
        "totals": totals,
        "queues": list(queues.values()),
        "counters": counters,
        "workers": workers,
        "telemetry": telemetry,
    }


async def store_health(backend: Backend) -> dict[str, list[str]]:
    """The store's diagnostics (`Admin.diagnostics`, as ``conveyor status`` shows them),
    split into ``topology`` (the lines starting with `TOPOLOGY_PREFIX`, without it: which
    servers, addresses only) and ``warnings`` (settings that can lose jobs)."""
    lines = await backend.admin.diagnostics()
    return {
        "topology": [
            line.removeprefix(TOPOLOGY_PREFIX) for line in lines if line.startswith(TOPOLOGY_PREFIX)
        ],
        "warnings": [line for line in lines if not line.startswith(TOPOLOGY_PREFIX)],
    }


async def history(backend: Backend, clock: Clock, minutes: int) -> dict[str, Any]:
    """Per-minute succeeded and failed attempts over the last ``minutes``, gaps as zeros.

    ``failure_rate`` is failed over finished attempts in that minute (``None`` when none
    finished); ``queues`` splits the same counts by queue.
    """
    minutes = max(1, min(minutes, MAX_MINUTES))
    last = int(clock.now() // 60) * 60
    first = last - (minutes - 1) * 60
    points = await backend.telemetry.history(first)
    by_minute: dict[int, list[HistoryPoint]] = {}
    for p in points:
        by_minute.setdefault(p.minute, []).append(p)
    series = []
    for minute in range(first, last + 1, 60):
        here = by_minute.get(minute, [])
        ok = sum(p.succeeded for p in here)
        bad = sum(p.failed for p in here)
        series.append(
            {
                "minute": minute,
                "succeeded": ok,
                "failed": bad,
                "failure_rate": round(bad / (ok + bad), 4) if ok + bad else None,
            }
        )
    queues: dict[str, dict[str, int]] = {}
    for p in points:
        q = queues.setdefault(p.queue, {"succeeded": 0, "failed": 0})
        q["succeeded"] += p.succeeded
        q["failed"] += p.failed
    return {"minutes": minutes, "series": series, "queues": queues}


async def workers(backend: Backend, clock: Clock) -> list[dict[str, Any]]:
    """Live workers with the stats they report, by id."""
    now = clock.now()
    rows = []
    for w in sorted(await backend.telemetry.workers(), key=lambda w: w.id):
        stats = w.stats
        rows.append(
            {
                "id": w.id,
                "host": w.host,
                "pid": w.pid,
                "pool": w.pool,
                "queues": list(w.queues) if w.queues else ["*"],
                "running": stats.get("running", 0),
                "concurrency": stats.get("concurrency"),
                "processed": stats.get("processed", 0),
                "failed": stats.get("failed", 0),
                "utilisation": stats.get("utilisation"),
                "rss_mb": stats.get("rss_mb"),
                "started_at": w.started_at,
                "uptime": round(max(0.0, now - w.started_at), 1),
                "last_seen": w.last_seen,
                "stats": stats,
            }
        )
    return rows


def job_summary(job: JobRecord) -> dict[str, Any]:
    """The fields a job list shows."""
    return {
        "id": job.id,
        "task": job.task,
        "queue": job.queue,
        "priority": job.priority.label,
        "state": job.state.value,
        "attempts": job.attempts,
        "max_retries": job.max_retries,
        "run_at": job.run_at,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "failed_at": job.failed_at,
        "last_error": job.last_error,
        # A record the store cannot read: what is wrong with it (see JobRecord.unreadable).
        "unreadable": job.unreadable,
        "progress": progress_view(job.current_progress()),
    }


def progress_view(progress: JobProgress | None) -> dict[str, Any] | None:
    """A progress report as the pages and the API show it: the stored fields, plus
    ``fraction`` (0..1, ``None`` without a total) and ``text`` (``40/100 (40%) note``)."""
    if progress is None:
        return None
    return {**progress.to_dict(), "fraction": progress.fraction, "text": progress.describe()}


def attempts_view(job: JobRecord) -> list[dict[str, Any]]:
    """`JobRecord.attempt_history`, oldest first, each attempt with its ``duration``."""
    return [{**a.to_dict(), "duration": a.duration} for a in job.attempt_history()]


async def jobs(
    backend: Backend,
    *,
    states: tuple[State, ...] | None = None,
    queue: str | None = None,
    task: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Jobs matching the filters, newest first; ``offset`` from 0 to `MAX_OFFSET`."""
    if not 0 <= offset <= MAX_OFFSET:
        raise ValueError(f"offset={offset} is out of range: give 0 to {MAX_OFFSET}")
    query = JobQuery(states=states, queue=queue, task=task, limit=limit, offset=offset)
    return [job_summary(j) for j in await backend.admin.query(query)]


def job_detail(job: JobRecord) -> dict[str, Any]:
    """Every field of a job, its arguments and result decoded, a timeline, its attempts
    (``attempt_history``) and the current attempt's ``progress``."""
    data = job.to_dict()
    data["attempt_history"] = attempts_view(job)
    data["progress"] = progress_view(job.current_progress())
    data["args"] = data["kwargs"] = None
    data["payload_error"] = None
    data["timeline"] = timeline(job)
    data["actions"] = actions_for(job)
    if job.unreadable is not None:
        # Its payload is a stand-in: ``unreadable`` and ``raw`` are what there is to show.
        return data
    try:
        data["args"], data["kwargs"] = decode_payload_json(job.payload)
    except SerializationError as exc:
        data["payload_error"] = str(exc)
    if job.result is not None:
        with contextlib.suppress(ValueError):  # keep the raw text
            data["result"] = decode_value_json(job.result)
    return data


def timeline(job: JobRecord) -> list[dict[str, Any]]:
    """What happened to the job, oldest first."""
    events: list[tuple[float, str]] = [(job.created_at, "enqueued")]
    if job.run_at > job.created_at + 0.001:
        events.append((job.run_at, "due (scheduled run time)"))
    if job.started_at is not None:
        events.append((job.started_at, f"attempt {job.attempts} started"))
    if job.failed_at is not None:
        events.append((job.failed_at, "attempt failed"))
    if job.finished_at is not None:
        events.append((job.finished_at, job.state.value))
    elif job.updated_at > job.created_at:
        events.append((job.updated_at, f"now {job.state.value}"))
    return [{"at": at, "event": what} for at, what in sorted(events, key=lambda e: e[0])]


def actions_for(job: JobRecord) -> list[str]:
    """What may be done to the job in its state: ``retry``, ``cancel``, ``delete``."""
    if job.state is State.DEAD:
        return ["retry", "delete"]
    if job.state in (State.SUCCEEDED, State.CANCELLED):
        return ["delete"]
    return ["cancel"]


async def schedules(app: Conveyor | None, backend: Backend) -> list[dict[str, Any]]:
    """Cron and periodic entries with their next and last runs (needs the app).

    The last runs are ``None`` on a store that records no ticks (see `ticks_recorded`).
    """
    if app is None or not app.schedules:
        return []
    from conveyor.scheduler import entry_rows

    return await entry_rows(app, backend if ticks_recorded(backend) else None)


def ticks_recorded(backend: Backend) -> bool:
    """Whether the store records cron ticks (its `Scheduling` capability): the last runs."""
    return backend.supports(Scheduling)


def parse_states(values: list[str]) -> tuple[State, ...] | None:
    """State names from a query string (repeated or comma separated); unknown ones raise."""
    names = [n.strip().lower() for v in values for n in v.split(",") if n.strip()]
    if not names:
        return None
    known = {s.value: s for s in State}
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(
            f"unknown state {bad[0]!r}: use one of {', '.join(s.value for s in STATES)}"
        )
    return tuple(known[n] for n in names)
