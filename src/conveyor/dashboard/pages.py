"""The HTML pages, rendered on the server, and the form POSTs behind their buttons.

Pages: overview, workers, jobs (filters and search), job detail, failed jobs, scheduled
jobs and cron entries, login. Every form POST goes through `action` (read-only and CSRF
checks) and answers with a redirect back to the page, carrying a signed notice.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from conveyor.backends.capabilities import Telemetry
from conveyor.dashboard import actions, data
from conveyor.dashboard.actions import Outcome
from conveyor.dashboard.security import checked_queue
from conveyor.dashboard.views import (
    action,
    backend,
    base_path,
    dashboard,
    render,
    safe_next,
    signed_notice,
)
from conveyor.errors import JobNotFound
from conveyor.job import State

PAGE_SIZE = 50
#: ASCII digits only: str.isdigit() also takes "²", which int() refuses.
_WHOLE = re.compile(r"-?[0-9]+")


async def overview(request: Request) -> Response:
    dash = dashboard(request)
    store = await backend(request)
    view = await data.overview(store, dash.clock)
    health = await data.store_health(store)
    return render(request, "overview.html", {"page": "overview", "view": view, "store": health})


async def workers(request: Request) -> Response:
    dash = dashboard(request)
    store = await backend(request)
    registry = store.supports(Telemetry)
    rows = await data.workers(store, dash.clock) if registry else []
    return render(
        request, "workers.html", {"page": "workers", "workers": rows, "registry": registry}
    )


async def jobs(request: Request) -> Response:
    q = request.query_params
    try:
        states = data.parse_states(q.getlist("state"))
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    store = await backend(request)
    search = (q.get("q") or "").strip()
    task = (q.get("task") or "").strip() or None
    if search:
        found = await store.get(search)
        if found is not None:
            return RedirectResponse(f"{base_path(request)}/jobs/{found.id}", status_code=303)
        task = search
    queue = (q.get("queue") or "").strip() or None
    offset = _page_offset(request)
    rows = await data.jobs(
        store, states=states, queue=queue, task=task, limit=PAGE_SIZE + 1, offset=offset
    )
    view = await data.overview(store, dashboard(request).clock)
    filters = {
        "state": [s.value for s in states] if states else [],
        "queue": queue or "",
        "task": task or "",
        "q": search,
    }
    return render(
        request,
        "jobs.html",
        {
            "page": "jobs",
            "jobs": rows[:PAGE_SIZE],
            "filters": filters,
            "states": [s.value for s in data.STATES],
            "queues": [row["name"] for row in view["queues"]],
            "offset": offset,
            "more": len(rows) > PAGE_SIZE,
            "page_size": PAGE_SIZE,
            "page_link": _page_link(request),
        },
    )


async def job(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    record = await (await backend(request)).get(job_id)
    if record is None:
        raise JobNotFound(f"job {job_id} does not exist (or was pruned after retention)")
    return render(request, "job.html", {"page": "jobs", "job": data.job_detail(record)})


async def failed(request: Request) -> Response:
    offset = _page_offset(request)
    rows = await data.jobs(
        await backend(request), states=(State.DEAD,), limit=PAGE_SIZE + 1, offset=offset
    )
    return render(
        request,
        "failed.html",
        {
            "page": "failed",
            "jobs": rows[:PAGE_SIZE],
            "offset": offset,
            "more": len(rows) > PAGE_SIZE,
            "page_size": PAGE_SIZE,
            "page_link": _page_link(request),
        },
    )


async def scheduled(request: Request) -> Response:
    dash = dashboard(request)
    store = await backend(request)
    rows = await data.jobs(store, states=(State.SCHEDULED,), limit=PAGE_SIZE)
    entries = await data.schedules(dash.app, store)
    return render(
        request,
        "scheduled.html",
        {
            "page": "scheduled",
            "jobs": rows,
            "entries": entries,
            "app_loaded": dash.app is not None,
            "ticks_recorded": data.ticks_recorded(store),
        },
    )


# -- actions ------------------------------------------------------------------------------
@action
async def retry(request: Request) -> Response:
    ids = await _form_ids(request)
    return await _done(request, await actions.retry(await backend(request), ids))


@action
async def delete(request: Request) -> Response:
    ids = await _form_ids(request)
    return await _done(request, await actions.delete(await backend(request), ids))


@action
async def cancel(request: Request) -> Response:
    outcome = await actions.cancel(await backend(request), request.path_params["job_id"])
    return await _done(request, outcome)


@action
async def pause(request: Request) -> Response:
    return await _done(request, await actions.pause(await backend(request), checked_queue(request)))


@action
async def resume(request: Request) -> Response:
    return await _done(
        request, await actions.resume(await backend(request), checked_queue(request))
    )


@action
async def run_due(request: Request) -> Response:
    app = dashboard(request).app
    if app is None:
        raise HTTPException(409, "start the dashboard with --app to run its schedule entries")
    return await _done(request, await actions.run_due(app, await backend(request)))


async def _form_ids(request: Request) -> list[str] | None:
    """The ``id`` fields of the form; ``None`` when ``all=1`` (every dead job)."""
    form = await request.form()
    if form.get("all") == "1":
        return None
    ids = [v for v in form.getlist("id") if isinstance(v, str) and v]
    if not ids:
        raise HTTPException(400, "no job selected: tick at least one job")
    return ids


async def _done(request: Request, outcome: Outcome) -> Response:
    form = await request.form()
    target = safe_next(request, form.get("next"))
    return RedirectResponse(f"{target}?{signed_notice(request, outcome.message)}", 303)


def _page_offset(request: Request) -> int:
    """``offset`` from the query string, clamped to 0..`data.MAX_OFFSET` (a page link that
    went stale or was edited shows the nearest page rather than an error)."""
    raw = request.query_params.get("offset", "0").strip() or "0"
    if not _WHOLE.fullmatch(raw):
        shown = raw if len(raw) <= 40 else raw[:37] + "..."
        raise HTTPException(400, f"offset={shown!r} is not a whole number: give 0 or more")
    if raw.startswith("-"):
        return 0
    # Compare the digits' count before int(): Python refuses to convert very long strings.
    if len(raw.lstrip("0")) > len(str(data.MAX_OFFSET)):
        return data.MAX_OFFSET
    return min(int(raw), data.MAX_OFFSET)


def _page_link(request: Request) -> str:
    """The current URL without ``offset``, ready for ``&offset=N``."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "offset"]
    return f"{request.url.path}?{urlencode(params)}"


def routes() -> list[Route]:
    """The pages and their form actions."""
    return [
        Route("/", overview, name="overview"),
        Route("/workers", workers, name="workers"),
        Route("/jobs", jobs, name="jobs"),
        Route("/jobs/retry", retry, methods=["POST"], name="retry"),
        Route("/jobs/delete", delete, methods=["POST"], name="delete"),
        Route("/jobs/{job_id}", job, name="job"),
        Route("/jobs/{job_id}/cancel", cancel, methods=["POST"], name="cancel"),
        Route("/failed", failed, name="failed"),
        Route("/scheduled", scheduled, name="scheduled"),
        Route("/schedules/run", run_due, methods=["POST"], name="run_due"),
        Route("/queues/{queue}/pause", pause, methods=["POST"], name="pause"),
        Route("/queues/{queue}/resume", resume, methods=["POST"], name="resume"),
    ]
