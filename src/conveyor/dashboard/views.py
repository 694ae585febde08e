"""What pages and API routes share: rendering, template filters, and the guard on actions.

`action` wraps every POST endpoint, so none can forget the two checks: the dashboard is
not read-only, and the request carries the CSRF token (or a bearer token).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from conveyor.dashboard.security import CSRF_FIELD, CSRF_HEADER
from conveyor.timefmt import fmt_duration, fmt_utc
from conveyor.tracebacks import split as split_traceback

if TYPE_CHECKING:
    from conveyor.backends.base import Backend
    from conveyor.dashboard.app import Dashboard

Endpoint = Callable[[Request], Awaitable[Response]]
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def dashboard(request: Request) -> Dashboard:
    """The `Dashboard` serving this request."""
    dash: Dashboard = request.app.state.dashboard
    return dash


async def backend(request: Request) -> Backend:
    """The dashboard's backend handle (opened on first use)."""
    return await dashboard(request).backend()


def base_path(request: Request) -> str:
    """Where the dashboard is mounted (``""`` at the root), for links and redirects."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def local_path(request: Request) -> str:
    """The request's path inside the dashboard (without the mount prefix)."""
    path = request.url.path
    base = base_path(request)
    return path[len(base) :] if base and path.startswith(base) else path


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    """A page: ``template`` with what every page needs (base path, CSRF token, flags)."""
    dash = dashboard(request)
    templates = request.app.state.templates
    full = {
        "base": base_path(request),
        "path": local_path(request),
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        "csrf": getattr(request.state, "csrf", ""),
        "read_only": dash.read_only,
        "refresh": dash.refresh,
        "title": dash.title,
        "url": dash.url,
        "logged_in": dash.guard.token is not None,
        "notice": request.query_params.get("notice") if _signed_notice(request) else None,
        "now": dash.clock.now(),
        "page": "",
        **context,
    }
    response: Response = templates.TemplateResponse(request, template, full, status_code=status)
    return response


# -- actions ------------------------------------------------------------------------------
def action(fn: Endpoint) -> Endpoint:
    """Refuse the POST when read-only or without a valid CSRF token; else run ``fn``."""

    @functools.wraps(fn)
    async def guarded(request: Request) -> Response:
        dash = dashboard(request)
        if dash.read_only:
            raise HTTPException(403, "this dashboard is read-only: actions are turned off")
        if not dash.guard.bearer(request):
            submitted = request.headers.get(CSRF_HEADER)
            if submitted is None and request.headers.get("content-type", "").startswith(
                _FORM_TYPES
            ):
                value = (await request.form()).get(CSRF_FIELD)
                submitted = value if isinstance(value, str) else None
            if not dash.guard.csrf_matches(request, submitted):
                raise HTTPException(
                    403,
                    "CSRF check failed: reload the page and try again (API clients: send "
                    "the X-CSRF-Token header with the conveyor_csrf cookie from "
                    "GET /api/csrf, or a bearer token)",
                )
        return await fn(request)

    return guarded


def signed_notice(request: Request, message: str) -> str:
    """The query string that makes a page show ``message`` once (signed: no spoofing)."""
    from urllib.parse import urlencode

    sig = dashboard(request).guard.sign(f"notice:{message}")
    return urlencode({"notice": message, "sig": sig})


def _signed_notice(request: Request) -> bool:
    message = request.query_params.get("notice")
    sig = request.query_params.get("sig")
    if not message or not sig:
        return False
    return dashboard(request).guard.verify(f"notice:{message}", sig)


def safe_next(request: Request, value: object) -> str:
    """A redirect target inside this dashboard: ``value`` if it is one, else the overview."""
    base = base_path(request)
    if (
        isinstance(value, str)
        and value.startswith(f"{base}/")
        and not value.startswith("//")
        and "\\" not in value
    ):
        return value.split("?", 1)[0]
    return f"{base}/"


# -- template filters ---------------------------------------------------------------------
def when(ts: float | None) -> str:
    """A timestamp as UTC to the second."""
    return fmt_utc(ts)


def duration(seconds: float | None) -> str:
    """``4.2s``, ``3m05s``, ``1h02m``, ``2d03h``; ``-`` for none."""
    return "-" if seconds is None else fmt_duration(seconds)


def ago(ts: float | None, now: float | None = None) -> str:
    """``3m05s ago`` or ``in 12.0s``."""
    if ts is None:
        return "-"
    delta = (time.time() if now is None else now) - ts
    return f"{duration(delta)} ago" if delta >= 0 else f"in {duration(-delta)}"


def pretty(value: Any) -> str:
    """JSON, indented (escaped by the template like any text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def percent(value: float | None) -> str:
    """``42%``, or ``-``."""
    return "-" if value is None else f"{value:.0%}"


def task_traceback(text: str) -> str:
    """A stored traceback from the task's own frames (`conveyor.tracebacks`)."""
    return split_traceback(text)[0]


def whole_traceback(text: str) -> str:
    """The whole stored traceback, with Conveyor's frames; ``""`` when it is the same."""
    return split_traceback(text)[1] or ""


FILTERS: dict[str, Callable[..., str]] = {
    "when": when,
    "duration": duration,
    "ago": ago,
    "pretty": pretty,
    "percent": percent,
    "task_traceback": task_traceback,
    "whole_traceback": whole_traceback,
}
