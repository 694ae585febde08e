"""The dashboard's two middlewares: the outer one stamps the security headers on every
response and checks the ``Host`` header; the inner one authenticates, throttles failed
credentials and hands out the CSRF cookie.

The headers are added at the ASGI level, so responses made before or around the routes (a
refused ``Host``, a 401, a 429) carry them too; a 500 is answered by Starlette's outermost
error middleware, whose handler (`conveyor.dashboard.app`) adds them itself.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.access import host_name, is_loopback
from conveyor.dashboard.security import CSRF_COOKIE, SECURITY_HEADERS
from conveyor.dashboard.views import base_path, local_path

#: Paths anyone may load: the login form and the static files it needs.
OPEN_PATHS = ("/login", "/static/")


class HeadersAndHost:
    """Pure ASGI: security headers on every response; refuse a ``Host`` not allowed.

    ``allowed_hosts`` is a list of names (``*.example.com`` and ``*`` work); ``None`` with
    ``loopback_only`` accepts only loopback names (``localhost``, ``127.0.0.1``, ``[::1]``),
    which is what stops a web page from reaching the dashboard through DNS rebinding.
    """

    def __init__(
        self, app: ASGIApp, *, allowed_hosts: Sequence[str] | None, loopback_only: bool
    ) -> None:
        self.app = app
        # Stored as `host_name` reads a header: lower case, IPv6 without its brackets.
        self.allowed = tuple(host_name(h) for h in allowed_hosts) if allowed_hosts else None
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        host = host_name(Headers(scope=scope).get("host", ""))
        if not self._host_allowed(host):
            response = PlainTextResponse(
                f"Invalid host header {host!r}: this dashboard answers only to "
                + (
                    ", ".join(self.allowed)
                    if self.allowed
                    else "loopback names (localhost, "
                    "127.0.0.1, [::1]) because it has no authentication"
                )
                + ". Open it by one of those names, or give create_dashboard allowed_hosts",
                status_code=400,
            )
            await response(scope, receive, stamped)
            return
        await self.app(scope, receive, stamped)

    def _host_allowed(self, host: str) -> bool:
        if self.allowed is not None:
            return any(_matches(host, pattern) for pattern in self.allowed)
        return not self.loopback_only or is_loopback(host)


def _matches(host: str, pattern: str) -> bool:
    """``pattern`` is a name, ``*.example.com`` (any subdomain) or ``*`` (any host)."""
    if pattern in ("*", host):
        return True
    return pattern.startswith("*.") and host.endswith(pattern[1:])


async def authenticate(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Authentication, throttling of wrong credentials, and the CSRF cookie."""
    from conveyor.dashboard.app import Dashboard

    dash: Dashboard = request.app.state.dashboard
    guard = dash.guard
    path = local_path(request)
    cookie = request.cookies.get(CSRF_COOKIE)
    fresh = None if guard.valid_browser_id(cookie) else guard.new_browser_id()
    if guard.required and guard.offers_credentials(request):
        client = guard.client_address(request)
        wait = guard.throttle.retry_after(client)
        if wait > 0:
            return too_many_attempts(request, wait)
        if guard.bearer(request) or guard.basic(request):
            guard.throttle.success(client)
        else:
            guard.throttle.failure(client)
    if dash.authorize is not None and not (guard.required and guard.authenticated(request)):
        # The host project's login decides; the dashboard's own credentials are not needed.
        verdict = await dash.authorized(request)
        if verdict is False:
            return _forbidden(request)
        if verdict is not True:
            return verdict
    elif not guard.authenticated(request) and not path.startswith(OPEN_PATHS):
        return _unauthenticated(request, dash.guard.token is not None, dash.guard.basic_auth)
    request.state.csrf = guard.csrf_token(request, fresh or cookie)
    response = await call_next(request)
    if fresh is not None and response.status_code not in (401, 429):
        response.set_cookie(
            CSRF_COOKIE,
            fresh,
            httponly=True,
            samesite="strict",
            path=cookie_path(request),
            secure=guard.secure(request),
        )
    return response


def _forbidden(request: Request) -> Response:
    message = "you are not allowed to see this dashboard (its authorize hook refused you)"
    if local_path(request).startswith("/api/"):
        return JSONResponse({"error": message}, status_code=403)
    return PlainTextResponse(message, status_code=403)


def too_many_attempts(request: Request, wait: float) -> Response:
    """429 with ``Retry-After``: this address sent too many wrong credentials."""
    seconds = max(1, math.ceil(wait))
    message = (
        f"too many failed attempts from this address: try again in {seconds} s "
        "(each further failure doubles the wait)"
    )
    return JSONResponse({"error": message}, status_code=429, headers={"retry-after": str(seconds)})


def _unauthenticated(request: Request, token: bool, basic: object) -> Response:
    path = local_path(request)
    if path.startswith("/api/") or not token:
        headers = (
            {"www-authenticate": 'Basic realm="conveyor dashboard"'}
            if basic is not None
            else {"www-authenticate": "Bearer"}
        )
        return JSONResponse(
            {
                "error": "authentication required: send Authorization: Bearer <token> "
                "(or the dashboard's basic-auth user and password)"
            },
            status_code=401,
            headers=headers,
        )
    return RedirectResponse(f"{base_path(request)}/login", status_code=303)


def cookie_path(request: Request) -> str:
    """The dashboard's cookies are scoped to its mount path."""
    return base_path(request) or "/"
