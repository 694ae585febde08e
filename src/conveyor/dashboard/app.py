"""`create_dashboard`: the Starlette app, its one middleware and its error pages.

The dashboard talks to storage only through the `Backend` protocol, on its own handle
(`Backend.clone`), opened on the first request in the server's event loop, so it can be
mounted in any ASGI project whatever loop or thread the project's own app uses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.dashboard.api import routes as api_routes
from conveyor.dashboard.pages import routes as page_routes
from conveyor.dashboard.security import CSRF_COOKIE, SECURITY_HEADERS, Guard
from conveyor.dashboard.views import FILTERS, base_path, local_path, render
from conveyor.errors import ConveyorError, JobNotFound
from conveyor.redaction import redact_text, redact_url

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.backends.base import Backend

HERE = Path(__file__).resolve().parent
#: Seconds between the page's live refreshes (``data-refresh`` on the page body).
DEFAULT_REFRESH = 5.0


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
    ) -> None:
        from conveyor.app import Conveyor

        self.app: Conveyor | None = source if isinstance(source, Conveyor) else None
        self._source: Backend = source.backend if isinstance(source, Conveyor) else source
        self.url = redact_url(self._source.url)
        self.guard = guard
        self.read_only = read_only
        self.clock: Clock = clock or (self.app.clock if self.app else SYSTEM_CLOCK)
        self.refresh = refresh
        self.title = title
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
    clock: Clock | None = None,
    refresh: float = DEFAULT_REFRESH,
    title: str = "Conveyor",
) -> Starlette:
    """The dashboard as an ASGI app: serve it with uvicorn, or mount it at any path.

    ``app_or_backend`` is your `Conveyor` app (cron entries are shown only with it) or a
    `Backend`. ``read_only`` hides every action and refuses every POST. ``token`` (sent as
    ``Authorization: Bearer``, or typed into ``/login``) and ``basic_auth``
    (``"user:password"``) make authentication required. ``secret_key`` signs CSRF and
    session cookies (random per process by default; set it when several processes serve
    one dashboard). ``allowed_hosts`` limits the ``Host`` header (against DNS rebinding).
    """
    guard = Guard.create(token=token, basic_auth=basic_auth, secret_key=secret_key)
    dash = Dashboard(
        app_or_backend,
        guard=guard,
        read_only=read_only,
        clock=clock,
        refresh=refresh,
        title=title,
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

    middleware = [Middleware(BaseHTTPMiddleware, dispatch=_guard)]
    if allowed_hosts:
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    routes: list[Route | Mount] = [
        *page_routes(),
        *api_routes(),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        HTTPException: _http_error,
        JobNotFound: _not_found,
        ConveyorError: _backend_error,
        OSError: _backend_error,
    }
    starlette = Starlette(
        routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=lifespan
    )
    starlette.state.dashboard = dash
    starlette.state.templates = templates
    return starlette


# -- the middleware: authentication, CSRF cookie, security headers ------------------------
_OPEN_PATHS = ("/login", "/static/")


async def _guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    dash: Dashboard = request.app.state.dashboard
    guard = dash.guard
    cookie = request.cookies.get(CSRF_COOKIE)
    fresh = None if guard.valid_csrf(cookie) else guard.new_csrf()
    request.state.csrf = fresh or cookie
    path = local_path(request)
    if not guard.authenticated(request) and not path.startswith(_OPEN_PATHS):
        response = _unauthenticated(request, dash, path)
    else:
        response = await call_next(request)
    if fresh is not None:
        response.set_cookie(
            CSRF_COOKIE,
            fresh,
            httponly=True,
            samesite="strict",
            path=_cookie_path(request),
            secure=request.url.scheme == "https",
        )
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _unauthenticated(request: Request, dash: Dashboard, path: str) -> Response:
    if path.startswith("/api/") or dash.guard.token is None:
        headers = (
            {"www-authenticate": 'Basic realm="conveyor dashboard"'}
            if dash.guard.basic_auth is not None
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


def _cookie_path(request: Request) -> str:
    return base_path(request) or "/"


# -- errors: a banner on pages, JSON under /api -------------------------------------------
def _wants_json(request: Request) -> bool:
    return local_path(request).startswith("/api/")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(request, exc.status_code, str(exc.detail))


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(request, 404, str(exc))


async def _backend_error(request: Request, exc: Exception) -> Response:
    message = f"the backend cannot be reached or failed: {redact_text(str(exc))}"
    return _error(request, 503, message)


def _error(request: Request, status: int, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": message}, status_code=status)
    return render(request, "error.html", {"status": status, "message": message}, status)
