"""The JSON API under ``/api``: what the pages show, as data, and the same actions.

Each route is declared once in `OPERATIONS` with its method, path, parameters and answer;
the Starlette routes and the OpenAPI document (``/api/openapi.json``, see
`conveyor.dashboard.openapi`) are both made from that list. POSTs need the CSRF token in
``X-CSRF-Token`` (with the cookie from ``GET /api/csrf``) or a bearer token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conveyor.dashboard import actions, data
from conveyor.dashboard.security import checked_queue
from conveyor.dashboard.views import Endpoint, action, backend, dashboard
from conveyor.errors import JobNotFound


@dataclass(slots=True, frozen=True)
class Param:
    """A path or query parameter."""

    name: str
    where: str  # "path" or "query"
    description: str
    type: str = "string"


@dataclass(slots=True, frozen=True)
class Operation:
    """One API route: how it is called and what it answers."""

    method: str
    path: str
    name: str
    summary: str
    endpoint: Endpoint
    response: str
    params: tuple[Param, ...] = ()
    body: str | None = None


# -- reading ------------------------------------------------------------------------------
async def get_overview(request: Request) -> Response:
    dash = dashboard(request)
    return JSONResponse(await data.overview(await backend(request), dash.clock))


async def get_history(request: Request) -> Response:
    minutes = _int(request, "minutes", data.DEFAULT_MINUTES, 1, data.MAX_MINUTES)
    dash = dashboard(request)
    return JSONResponse(await data.history(await backend(request), dash.clock, minutes))


async def get_workers(request: Request) -> Response:
    dash = dashboard(request)
    return JSONResponse({"workers": await data.workers(await backend(request), dash.clock)})


async def get_jobs(request: Request) -> Response:
    q = request.query_params
    try:
        states = data.parse_states(q.getlist("state"))
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    limit = _int(request, "limit", 50, 1, 500)
    offset = _int(request, "offset", 0, 0, data.MAX_OFFSET)
    rows = await data.jobs(
        await backend(request),
        states=states,
        queue=q.get("queue") or None,
        task=q.get("task") or None,
        limit=limit,
        offset=offset,
    )
    return JSONResponse({"jobs": rows, "limit": limit, "offset": offset})


async def get_job(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    job = await (await backend(request)).get(job_id)
    if job is None:
        raise JobNotFound(f"job {job_id} does not exist (or was pruned after retention)")
    return JSONResponse(data.job_detail(job))


async def get_schedules(request: Request) -> Response:
    dash = dashboard(request)
    store = await backend(request)
    rows = await data.schedules(dash.app, store)
    return JSONResponse(
        {
            "entries": rows,
            "app_loaded": dash.app is not None,
            "ticks_recorded": data.ticks_recorded(store),
        }
    )


async def get_csrf(request: Request) -> Response:
    return JSONResponse({"csrf_token": request.state.csrf, "header": "X-CSRF-Token"})


async def get_openapi(request: Request) -> Response:
    from conveyor.dashboard.openapi import document

    return JSONResponse(document(OPERATIONS, request.scope.get("root_path", "")))


# -- acting -------------------------------------------------------------------------------
@action
async def post_retry(request: Request) -> Response:
    ids = await _ids(request)
    return JSONResponse((await actions.retry(await backend(request), ids)).to_dict())


@action
async def post_delete(request: Request) -> Response:
    ids = await _ids(request)
    return JSONResponse((await actions.delete(await backend(request), ids)).to_dict())


@action
async def post_cancel(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    return JSONResponse((await actions.cancel(await backend(request), job_id)).to_dict())


@action
async def post_pause(request: Request) -> Response:
    queue = checked_queue(request)
    return JSONResponse((await actions.pause(await backend(request), queue)).to_dict())


@action
async def post_resume(request: Request) -> Response:
    queue = checked_queue(request)
    return JSONResponse((await actions.resume(await backend(request), queue)).to_dict())


@action
async def post_run_due(request: Request) -> Response:
    app = dashboard(request).app
    if app is None:
        raise HTTPException(
            409, "schedule entries live in the app's code: start the dashboard with --app"
        )
    return JSONResponse((await actions.run_due(app, await backend(request))).to_dict())


async def _ids(request: Request) -> list[str] | None:
    """``{"ids": [...]}`` or ``{"all": true}`` (``None``: every dead job)."""
    try:
        body: Any = await request.json()
    except ValueError:
        raise HTTPException(
            400, 'the body must be JSON: {"ids": ["..."]} or {"all": true}'
        ) from None
    if isinstance(body, dict) and body.get("all") is True:
        return None
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise HTTPException(400, 'give {"ids": ["<job id>", ...]} (non-empty) or {"all": true}')
    return ids


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    shown = raw if len(raw) <= 40 else raw[:37] + "..."  # never echo a huge value back
    try:
        value = int(raw)
    except ValueError:  # not a number, or over the 4,300 digits int() converts
        raise HTTPException(
            400, f"{name}={shown!r} is not a whole number: give {low} to {high}"
        ) from None
    if not low <= value <= high:
        raise HTTPException(400, f"{name}={shown} is out of range: give {low} to {high}")
    return value


_JOB_ID = Param("job_id", "path", "The job's id.")
_QUEUE = Param("queue", "path", "The queue's name.")

#: Every API route, in the order the OpenAPI document lists them.
OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/api/overview",
        "api_overview",
        "Totals by state, each queue by priority with paused flag and oldest wait, "
        "lease counters and the number of live workers.",
        get_overview,
        "Overview",
    ),
    Operation(
        "GET",
        "/api/history",
        "api_history",
        "Succeeded and failed attempts per minute (throughput and failure rate).",
        get_history,
        "History",
        (Param("minutes", "query", "How many minutes back (1 to 1440, default 60).", "integer"),),
    ),
    Operation(
        "GET",
        "/api/workers",
        "api_workers",
        "Live workers and their stats.",
        get_workers,
        "Workers",
    ),
    Operation(
        "GET",
        "/api/jobs",
        "api_jobs",
        "Jobs, newest first, filtered.",
        get_jobs,
        "Jobs",
        (
            Param(
                "state",
                "query",
                "A state, or several comma separated: scheduled, "
                "ready, running, succeeded, dead, cancelled.",
            ),
            Param("queue", "query", "Only this queue."),
            Param("task", "query", "Only this task name."),
            Param("limit", "query", "At most this many (1 to 500, default 50).", "integer"),
            Param("offset", "query", "Skip this many (default 0).", "integer"),
        ),
    ),
    Operation(
        "GET",
        "/api/jobs/{job_id}",
        "api_job",
        "One job: every field, decoded arguments, result, error, traceback, timeline.",
        get_job,
        "JobDetail",
        (_JOB_ID,),
    ),
    Operation(
        "GET",
        "/api/schedules",
        "api_schedules",
        "Cron and periodic entries with next and last runs (needs --app).",
        get_schedules,
        "Schedules",
    ),
    Operation(
        "GET",
        "/api/csrf",
        "api_csrf",
        "A CSRF token for POSTs (also set as the conveyor_csrf cookie).",
        get_csrf,
        "Csrf",
    ),
    Operation("GET", "/api/openapi.json", "api_openapi", "This document.", get_openapi, "OpenAPI"),
    Operation(
        "POST",
        "/api/jobs/retry",
        "api_retry",
        "Move dead jobs back to ready with fresh attempts.",
        post_retry,
        "Outcome",
        body="Ids",
    ),
    Operation(
        "POST",
        "/api/jobs/delete",
        "api_delete",
        'Delete finished jobs by id, or every dead job with {"all": true}.',
        post_delete,
        "Outcome",
        body="Ids",
    ),
    Operation(
        "POST",
        "/api/jobs/{job_id}/cancel",
        "api_cancel",
        "Cancel a scheduled, ready or running job.",
        post_cancel,
        "Outcome",
        (_JOB_ID,),
    ),
    Operation(
        "POST",
        "/api/queues/{queue}/pause",
        "api_pause",
        "Pause a queue: workers take none of its jobs until resumed.",
        post_pause,
        "Outcome",
        (_QUEUE,),
    ),
    Operation(
        "POST",
        "/api/queues/{queue}/resume",
        "api_resume",
        "Resume a paused queue.",
        post_resume,
        "Outcome",
        (_QUEUE,),
    ),
    Operation(
        "POST",
        "/api/schedules/run",
        "api_run_due",
        "Enqueue the schedule entries due now, once (conveyor schedule run). Needs --app.",
        post_run_due,
        "Outcome",
    ),
)


def routes() -> list[Route]:
    """The Starlette routes of `OPERATIONS`."""
    return [Route(op.path, op.endpoint, methods=[op.method], name=op.name) for op in OPERATIONS]
