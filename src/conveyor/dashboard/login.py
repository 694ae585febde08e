"""``/login`` and ``/logout``: the token login's session, throttled against guessing.

A right token starts a new session (a fresh random id: a session id planted before login
is never promoted) in a cookie that expires after the dashboard's ``session_max_age``; the
server checks the signed issue time too, so a kept cookie stops working all the same.
Wrong tokens are counted per client address; past the free ones the address waits
(429 with ``Retry-After``). ``POST /logout`` ends the session on the server and clears the
cookie.
"""

from __future__ import annotations

import math

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from conveyor.dashboard.middleware import cookie_path
from conveyor.dashboard.security import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE
from conveyor.dashboard.views import base_path, dashboard, render

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def login(request: Request) -> Response:
    """The login form, and its POST."""
    guard = dashboard(request).guard
    if guard.token is None:
        return RedirectResponse(f"{base_path(request)}/", status_code=303)
    if request.method != "POST":
        return render(request, "login.html", {"page": "login", "error": None})
    client = guard.client_address(request)
    wait = guard.throttle.retry_after(client)
    if wait > 0:
        return _refused(request, wait)
    form = await request.form()
    token = form.get("token")
    if not guard.csrf_matches(request, await submitted_csrf(request)):
        error = "the form expired: try again"
    elif isinstance(token, str) and guard.check_token(token):
        guard.throttle.success(client)
        response = RedirectResponse(f"{base_path(request)}/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            guard.new_session(),
            max_age=int(guard.session_max_age),
            httponly=True,
            samesite="strict",
            path=cookie_path(request),
            secure=guard.secure(request),
        )
        return response
    else:
        wait = guard.throttle.failure(client)
        if wait > 0:
            return _refused(request, wait)
        error = "wrong token"
    return render(request, "login.html", {"page": "login", "error": error}, 401)


async def logout(request: Request) -> Response:
    """End the session (on the server too) and clear its cookie."""
    guard = dashboard(request).guard
    if not guard.bearer(request) and not guard.csrf_matches(request, await submitted_csrf(request)):
        raise HTTPException(403, "CSRF check failed: reload the page and try again")
    guard.end_session(request)
    target = "/login" if guard.token is not None else "/"
    response = RedirectResponse(f"{base_path(request)}{target}", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE,
        path=cookie_path(request),
        httponly=True,
        samesite="strict",
        secure=guard.secure(request),
    )
    return response


async def submitted_csrf(request: Request) -> str | None:
    """The CSRF token a POST repeats: the ``X-CSRF-Token`` header or the form field."""
    submitted = request.headers.get(CSRF_HEADER)
    if submitted is None and request.headers.get("content-type", "").startswith(_FORM_TYPES):
        value = (await request.form()).get(CSRF_FIELD)
        submitted = value if isinstance(value, str) else None
    return submitted


def _refused(request: Request, wait: float) -> Response:
    seconds = max(1, math.ceil(wait))
    error = (
        f"too many wrong tokens from this address: try again in {seconds} s "
        "(each further failure doubles the wait)"
    )
    response = render(request, "login.html", {"page": "login", "error": error}, 429)
    response.headers["retry-after"] = str(seconds)
    return response


def routes() -> list[Route]:
    """The login form and the logout action."""
    return [
        Route("/login", login, methods=["GET", "POST"], name="login"),
        Route("/logout", logout, methods=["POST"], name="logout"),
    ]
