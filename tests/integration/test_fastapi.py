"""Conveyor in a real FastAPI app, through httpx (docs/fastapi.md): the lifespan, the enqueue
dependency, and the dashboard behind the host app's own login."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
import uvicorn
from tests.integration.redis_server import free_port

try:
    from fastapi import Depends, FastAPI
except ImportError:  # pragma: no cover - the test extra installs it
    if os.environ.get("CI"):
        raise
    pytest.skip("FastAPI is not installed (the test extra has it)", allow_module_level=True)

from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    SimpleUser,
    UnauthenticatedUser,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response

from conveyor import Conveyor
from conveyor.contrib.fastapi import Enqueuer, lifespan, mount_dashboard
from conveyor.errors import ConfigError

pytestmark = pytest.mark.timeout(60)


@contextmanager
def serve(api: FastAPI, *, follow_redirects: bool = True) -> Iterator[httpx.Client]:
    """``api`` served by a real uvicorn (lifespan included) in a thread; a client on it."""
    config = uvicorn.Config(api, host="127.0.0.1", port=free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{config.port}"
    try:
        with httpx.Client(base_url=url, timeout=10, follow_redirects=follow_redirects) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        assert not thread.is_alive(), "uvicorn did not stop"


def make_jobs(path: Path) -> Conveyor:
    jobs = Conveyor(f"sqlite:///{path}")

    @jobs.task(name="shop.send_receipt")
    async def send_receipt(order_id: int) -> None:
        """A job of the host app."""

    return jobs


class CookieLogin(AuthenticationBackend):
    """The host app's login: a ``user`` cookie (a real app would sign it)."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, Any] | None:
        name = conn.cookies.get("user")
        if not name:
            return AuthCredentials(), UnauthenticatedUser()
        return AuthCredentials(["authenticated"]), SimpleUser(name)


def admins_only(request: Request) -> bool | Response:
    """The host app's rule for the dashboard: its own login, admins only."""
    if not request.user.is_authenticated:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    return bool(request.user.username == "ada")


def make_api(jobs: Conveyor, **dashboard: Any) -> FastAPI:
    api = FastAPI(
        lifespan=lifespan(jobs),
        middleware=[Middleware(AuthenticationMiddleware, backend=CookieLogin())],
    )
    send_receipt = jobs.tasks["shop.send_receipt"]

    @api.post("/orders/{order_id}")
    async def create_order(
        order_id: int, enqueue: Annotated[Enqueuer, Depends()]
    ) -> dict[str, str]:
        job = await enqueue(send_receipt.options(queue="receipts"), order_id)
        return {"job": job.id}

    api.state.dashboard = mount_dashboard(api, jobs, "/admin/jobs", **dashboard)
    return api


def test_the_lifespan_opens_the_store_and_the_dependency_enqueues(tmp_path: Path) -> None:
    store = tmp_path / "jobs.db"
    jobs = make_jobs(store)
    with serve(make_api(jobs, authorize=admins_only)) as client:
        # The store was opened (created) at start-up, before any request
        assert store.exists()
        made = client.post("/orders/7", headers={"X-Request-ID": "req-123"})
        assert made.status_code == 200, made.text
        job = jobs.job(made.json()["job"]).info()
        # The job carries its call and the request's id as its correlation id
        assert (job.task, job.queue) == ("shop.send_receipt", "receipts")
        assert job.headers["correlation_id"] == "req-123"


def test_a_store_that_cannot_open_stops_the_start_up(tmp_path: Path) -> None:
    jobs = make_jobs(tmp_path / "missing" / "jobs.db")
    jobs.url += "?mode=rw"  # open only an existing file
    api = make_api(jobs)

    async def start() -> None:
        async with api.router.lifespan_context(api):
            raise AssertionError("started")

    with pytest.raises(ConfigError, match="missing"):
        asyncio.run(start())


def test_the_dashboard_sits_behind_the_host_apps_login(tmp_path: Path) -> None:
    jobs = make_jobs(tmp_path / "jobs.db")
    api = make_api(jobs, authorize=admins_only)
    with serve(api, follow_redirects=False) as client:
        # Not logged in: the host app's login page, with the way back
        page = client.get("/admin/jobs/")
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=/admin/jobs/"
        # Logged in, but not allowed
        client.cookies.set("user", "bob")
        assert client.get("/admin/jobs/").status_code == 403
        assert client.get("/admin/jobs/api/overview").status_code == 403
        # Allowed: pages, the API, and actions with the page's CSRF token
        client.cookies.set("user", "ada")
        page = client.get("/admin/jobs/")
        assert page.status_code == 200
        # Behind the host app's login it answers to any name, not only loopback ones
        assert client.get("/admin/jobs/", headers={"host": "shop.example.com"}).status_code == 200
        token = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        paused = client.post("/admin/jobs/api/queues/mail/pause", headers={"x-csrf-token": token})
        assert paused.status_code == 200, paused.text
        assert client.post("/admin/jobs/api/queues/mail/resume").status_code == 403
        handle = api.state.dashboard.state.dashboard
        assert handle._backend is not None  # opened by the first request
    # The host app's shutdown closed the dashboard's own store handle
    assert handle._backend is None


def test_an_async_authorize_and_a_token_for_scripts(tmp_path: Path) -> None:
    jobs = make_jobs(tmp_path / "jobs.db")

    async def logged_in(request: Request) -> bool:
        return bool(request.user.is_authenticated)

    token = "t" * 24
    with serve(make_api(jobs, authorize=logged_in, token=token)) as client:
        assert client.get("/admin/jobs/api/overview").status_code == 403
        # A script with the dashboard's own token needs no login of the host app
        scripted = client.get(
            "/admin/jobs/api/overview", headers={"authorization": f"Bearer {token}"}
        )
        assert scripted.status_code == 200
        client.cookies.set("user", "bob")
        assert client.get("/admin/jobs/api/overview").status_code == 200


def test_an_inner_lifespan_runs_inside_and_keeps_its_state(tmp_path: Path) -> None:
    jobs = make_jobs(tmp_path / "jobs.db")
    seen: list[str] = []

    @asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        seen.append("start")
        yield {"db": "the app's own"}
        seen.append("stop")

    api = FastAPI(lifespan=lifespan(jobs, own))

    @api.get("/state")
    async def state(request: Request) -> dict[str, Any]:
        return {"db": request.state.db, "conveyor": request.state.conveyor is jobs}

    with serve(api) as client:
        assert client.get("/state").json() == {"db": "the app's own", "conveyor": True}
    assert seen == ["start", "stop"]
