"""`create_dashboard`: the Starlette app, its one middleware and its error pages.

The dashboard talks to storage only through the `Backend` protocol, on its own handle
(`Backend.clone`), opened on the first request in the server's event loop, so it can be
mounted in any ASGI project whatever loop or thread the project's own app uses.

Who may see it: the dashboard's own token or password, or the host project's login through
an ``authorize(request)`` hook (`Authorize`), or loopback only.

It needs the store's `Admin` capability (refused at creation without it); without
`Telemetry` the pages say the store keeps no history or worker registry, and the API's
history and workers routes answer 501.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from conveyor.backends.capabilities import Admin, Unsupported
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.dashboard.api import routes as api_routes
from conveyor.dashboard.login import routes as login_routes
from conveyor.dashboard.middleware import HeadersAndHost, authenticate
from conveyor.dashboard.pages import routes as page_routes
from conveyor.dashboard.security import (
    DEFAULT_SESSION_MAX_AGE,
    SECURITY_HEADERS,
    Guard,
    credentials_problem,
)
from conveyor.dashboard.views import FILTERS, local_path, render
from conveyor.errors import ConfigError, ConveyorError, JobNotFound
from conveyor.redaction import redact_text, redact_url

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.backends.base import Backend

HERE = Path(__file__).resolve().parent
#: Seconds between the page's live refreshes (``data-refresh`` on the page body).
DEFAULT_REFRESH = 5.0

#: ``authorize(request)``, sync or async: ``True`` lets the request in, ``False`` refuses it
#: (403), a `Response` is sent as it is (a redirect to the host project's login page).
Authorize: TypeAlias = Callable[[Request], "bool | Response | Awaitable[bool | Response]"]


class Dashboard:
    """What every route shares: the backend handle, the app (for schedules), the guard."""

    def __init__(
        self,
        source: Conveyor | Backend,
        *,
        guard: Guard,
        read_only: bool,
        clock: Clock | None,
        refresh: float,
        title: str,
        authorize: Authorize | None = None,
    ) -> None:
        from conveyor.app import Conveyor

        self.app: Conveyor | None = source if isinstance(source, Conveyor) else None
        self._source: Backend = source.backend if isinstance(source, Conveyor) else source
        self._source.require(Admin, purpose="the dashboard")
        self.url = redact_url(self._source.url)
        self.guard = guard
        self.read_only = read_only
        self.clock: Clock = clock or (self.app.clock if self.app else SYSTEM_CLOCK)
        self.refresh = refresh
        self.title = title
        self.authorize = authorize
        self._backend: Backend | None = None
        self._lock: asyncio.Lock | None = None

    async def backend(self) -> Backend:
        """The dashboard's own handle on the store, opened on first use."""
        if self._backend is not None:
            return self._backend
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._backend is None:
                handle = self._source.clone()
                await handle.open()
                self._backend = handle
        return self._backend

    async def authorized(self, request: Request) -> bool | Response:
        """The ``authorize`` hook's answer for ``request`` (``True`` without a hook)."""
        if self.authorize is None:
            return True
        verdict = self.authorize(request)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if isinstance(verdict, Response):
            return verdict
        if not isinstance(verdict, bool):
            raise TypeError(
                f"the dashboard's authorize hook returned {type(verdict).__name__}; it must "
                "return True, False or a Response"
            )
        return verdict

    async def close(self) -> None:
        """Close the dashboard's handle (the caller's own backend is left alone)."""
        handle, self._backend = self._backend, None
        if handle is not None:
            await handle.close()


def create_dashboard(
    app_or_backend: Conveyor | Backend,
    *,
    read_only: bool = False,
    token: str | None = None,
    basic_auth: str | tuple[str, str] | None = None,
    secret_key: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
    trust_host_app_auth: bool = False,
    authorize: Authorize | None = None,
    session_max_age: float = DEFAULT_SESSION_MAX_AGE,
    trusted_proxies: Sequence[str] = (),
    secure_cookies: bool = False,
    clock: Clock | None = None,
    refresh: float = DEFAULT_REFRESH,
    title: str = "Conveyor",
) -> Starlette:
    """The dashboard as an ASGI app: serve it with uvicorn, or mount it at any path.

    ``app_or_backend`` is your `Conveyor` app (cron entries are shown only with it) or a
    `Backend`. ``read_only`` hides every action and refuses every POST. ``token`` (sent as
    ``Authorization: Bearer``, or typed into ``/login``; at least 16 characters) and
    ``basic_auth`` (``"user:password"``, a password of at least 8) make authentication
    required. ``secret_key`` signs CSRF and session cookies (random per process by default;
    set it when several processes serve one dashboard). ``session_max_age`` is how long a
    login lasts, in seconds (12 hours).

    ``allowed_hosts`` limits the ``Host`` header. Without it, a dashboard with no token and
    no password answers only to loopback names (against DNS rebinding), unless
    ``trust_host_app_auth=True`` says your project authenticates requests before they
    reach it.

    ``authorize(request)`` (sync or async) puts the dashboard behind your project's own
    login: called for every request, it returns ``True`` to let it in, ``False`` to refuse
    it (403), or a `Response` to send instead (a redirect to your login page). The request
    is the mounted app's, so ``request.session``, ``request.user`` and your cookies are
    there. With a ``token`` or ``basic_auth`` as well, a request carrying those credentials
    needs no ``authorize``; one without them asks ``authorize``.

    ``trusted_proxies`` (addresses or networks) are believed about the client's
    address and scheme (``X-Forwarded-For``, ``X-Forwarded-Proto``); ``secure_cookies``
    marks cookies ``Secure`` whatever the scheme looks like.
    """
    problem = credentials_problem(token or None, basic_auth)
    if problem is not None:
        raise ConfigError(problem)
    if session_max_age <= 0:
        raise ConfigError(f"session_max_age={session_max_age!r}: give seconds > 0")
    source_clock = clock or getattr(app_or_backend, "clock", None) or SYSTEM_CLOCK
    try:
        guard = Guard.create(
            token=token,
            basic_auth=basic_auth,
            secret_key=secret_key,
            session_max_age=session_max_age,
            trusted_proxies=trusted_proxies,
            secure_cookies=secure_cookies,
            now=source_clock.now,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    dash = Dashboard(
        app_or_backend,
        guard=guard,
        read_only=read_only,
        clock=clock,
        refresh=refresh,
        title=title,
        authorize=authorize,
    )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(FILTERS)
    templates = Jinja2Templates(env=env)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await dash.close()

    # Without authentication of its own or of the host project, only loopback names.
    host_auth = trust_host_app_auth or authorize is not None
    loopback_only = not allowed_hosts and not guard.required and not host_auth
    middleware = [
        Middleware(HeadersAndHost, allowed_hosts=allowed_hosts, loopback_only=loopback_only),
        Middleware(BaseHTTPMiddleware, dispatch=authenticate),
    ]
    routes: list[Route | Mount] = [
        *login_routes(),
        *page_routes(),
        *api_routes(),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        HTTPException: _http_error,
        JobNotFound: _not_found,
        Unsupported: _unsupported,
        ConveyorError: _backend_error,
        OSError: _backend_error,
        Exception: _server_error,
    }
    starlette = Starlette(
        routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=lifespan
    )
    starlette.state.dashboard = dash
    starlette.state.templates = templates
    return starlette


# -- errors: a banner on pages, JSON under /api -------------------------------------------
def _wants_json(request: Request) -> bool:
    return local_path(request).startswith("/api/")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(request, exc.status_code, str(exc.detail))


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(request, 404, str(exc))


async def _unsupported(request: Request, exc: Exception) -> Response:
    # The store lacks what the request needs (an API route for history, say): not an outage.
    return _error(request, 501, str(exc))


async def _backend_error(request: Request, exc: Exception) -> Response:
    message = f"the backend cannot be reached or failed: {redact_text(str(exc))}"
    return _error(request, 503, message)


async def _server_error(request: Request, exc: Exception) -> Response:
    # Starlette answers a 500 from its outermost middleware, outside ours: the headers are
    # added here. The exception itself goes to the server's log, never to the page.
    message = "the dashboard failed on this request; the server log has the details"
    try:
        response = _error(request, 500, message)
    except Exception:  # noqa: BLE001 - a page that cannot render still gets an answer
        response = PlainTextResponse(message, status_code=500)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _error(request: Request, status: int, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": message}, status_code=status)
    return render(request, "error.html", {"status": status, "message": message}, status)
