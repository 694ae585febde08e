"""The dashboard next to a Django project, behind Django's own login.

The dashboard is an ASGI app (Starlette), so it is served by the project's ASGI server:
`with_dashboard` wraps Django's ASGI application in one that sends the dashboard's path to
the dashboard and everything else to Django.

```python
# mysite/asgi.py
import os
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django_app = get_asgi_application()

from conveyor.contrib.django import with_dashboard  # after Django is set up

application = with_dashboard(django_app, "/admin/jobs/")
```

Each request to the dashboard is checked against Django's session: a visitor who is not
logged in is sent to ``LOGIN_URL`` (with ``?next=`` back), a logged-in user who may not
see it gets 403. By default only active staff users may (``permission=`` takes any
``user -> bool``, e.g. ``lambda user: user.has_perm("shop.view_jobs")``). Django's session
cookie, session engine and ``AUTHENTICATION_BACKENDS`` are used as they are; the session's
password hash is checked as on any page, so changing a password logs the dashboard out too.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Router

from conveyor.dashboard.views import local_path
from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from conveyor.app import Conveyor

Permission = Callable[[Any], bool]


def staff_only(user: Any) -> bool:
    """The default permission: an active staff user."""
    return bool(user.is_active and user.is_staff)


def with_dashboard(
    application: ASGIApp,
    path: str = "/conveyor/",
    *,
    conveyor: Conveyor | None = None,
    permission: Permission = staff_only,
    **options: Any,
) -> ASGIApp:
    """``application`` with the dashboard of ``conveyor`` (the project's app) at ``path``.

    ``permission(user)`` says which logged-in users may see it (active staff by default);
    ``options`` are `create_dashboard`'s (``read_only=True``, ``title``, ...).
    """
    from conveyor.dashboard import create_dashboard

    if not path.startswith("/") or path.strip("/") == "":
        raise ConfigError(
            f"with_dashboard path={path!r}: give the path it lives under, e.g. '/admin/jobs/'"
        )
    if conveyor is None:
        from conveyor.contrib.django.project import project_app

        conveyor = project_app()
    dashboard = create_dashboard(conveyor, authorize=DjangoLogin(permission), **options)
    # The router answers the server's lifespan (Django's ASGI handler refuses one): at
    # shutdown the dashboard's lifespan closes its store handle.
    return Router(
        routes=[Mount("/" + path.strip("/"), app=dashboard)],
        default=application,
        lifespan=dashboard.router.lifespan_context,
    )


class DjangoLogin:
    """The dashboard's ``authorize`` hook: Django's session user, and ``permission``."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(self, request: Request) -> bool | Response:
        """``True`` for a permitted user, ``False`` for another, a login redirect if none."""
        key = request.cookies.get(settings.SESSION_COOKIE_NAME)
        allowed = await _allowed(key, self.permission) if key else None
        if allowed is None:
            # A page gets the login form; the API and actions (scripts, fetches) get 403.
            if request.method != "GET" or local_path(request).startswith("/api/"):
                return False
            return RedirectResponse(_login_url(request), status_code=302)
        return allowed


@sync_to_async(thread_sensitive=True)
def _allowed(session_key: str, permission: Permission) -> bool | None:
    """Whether the session's user may see the dashboard (``None``: nobody logged in).

    Run in Django's own thread, as a view: finding the user and ``permission(user)``
    (``user.has_perm(...)``, ``user.groups...``) may query the database, which Django
    refuses from async code.
    """
    from django.contrib.auth import get_user
    from django.http import HttpRequest

    # Database connections follow the request cycle: a stale one is dropped first, and one
    # past CONN_MAX_AGE after.
    close_old_connections()
    try:
        request = HttpRequest()
        request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        user = get_user(request)
        if not user.is_authenticated:
            return None
        return bool(permission(user))
    finally:
        close_old_connections()


def _login_url(request: Request) -> str:
    from django.contrib.auth.views import redirect_to_login

    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return str(redirect_to_login(here).url)
