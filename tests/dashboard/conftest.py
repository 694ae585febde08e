"""Fixtures for the dashboard tests: a seeded memory store and an HTTP client on the app.

The client speaks to the ASGI app in process (httpx's ASGI transport), keeps cookies like a
browser, and `csrf` reads the token the dashboard gave it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp

from conveyor import Conveyor
from conveyor.backends.base import Backend
from conveyor.dashboard import create_dashboard
from conveyor.job import Failure, HistoryPoint, Lease, Routing

XSS = "<script>alert(1)</script>"


def build_app(url: str = "memory://") -> Conveyor:
    """An app on the empty store at ``url`` with two tasks and a cron entry."""
    app = Conveyor(url)

    @app.task(name="mail.send", queue="mail", priority="high", retries=0)
    def send(to: str) -> None:
        """Send one mail."""

    @app.task(name="reports.build", queue="reports", retries=0)
    def build(report: str) -> None:
        """Build a report."""

    @app.cron("*/5 * * * *", name="nightly-report", args=("nightly",))
    def nightly(report: str) -> None:
        """A cron entry."""

    return app


async def make_dead(backend: Backend, queue: str, error: str, traceback: str) -> str:
    """Claim one ready job of ``queue`` and fail it for good; its id."""
    [job] = await backend.claim("test-worker", Routing(queues=(queue,)), 1, 30.0)
    assert job.lease_token is not None
    await backend.fail(Lease(job.id, job.lease_token), Failure(error, traceback))
    return job.id


@pytest.fixture
def app() -> Conveyor:
    """The app, its store empty."""
    return build_app()


@pytest.fixture
async def seeded(app: Conveyor) -> dict[str, Any]:
    """A store with a ready job, a dead one (an XSS payload in its arguments and error), a
    scheduled one, and throughput history; the ids by name."""
    send, build = app.tasks["mail.send"], app.tasks["reports.build"]
    ready = send.enqueue("a@example.com").id
    build.enqueue(XSS)
    backend = await app.open()
    dead = await make_dead(backend, "reports", f"ValueError: {XSS}", f"Traceback:\n  {XSS}")
    later = send.options(delay=3600).enqueue("later@example.com").id
    now = int(app.clock.now() // 60) * 60
    await backend.telemetry.record_history(
        [HistoryPoint(now - 120, "mail", 8, 2), HistoryPoint(now - 60, "reports", 5, 0)],
        keep=86400,
    )
    return {"ready": ready, "dead": dead, "scheduled": later}


def client_for(asgi: ASGIApp, **kwargs: Any) -> httpx.AsyncClient:
    """An HTTP client on ``asgi`` in process (cookies kept, redirects not followed)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=asgi), base_url="http://127.0.0.1", **kwargs
    )


@pytest.fixture
async def client(app: Conveyor) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the dashboard of `app` (read-write, no auth)."""
    dashboard = create_dashboard(app)
    try:
        async with client_for(dashboard) as c:
            yield c
    finally:
        # The in-process transport runs no lifespan: close the dashboard's own handle here.
        await dashboard.state.dashboard.close()


async def csrf(client: httpx.AsyncClient, prefix: str = "") -> str:
    """The CSRF token of ``client``'s session (fetched from a page first)."""
    page = await client.get(f"{prefix}/")
    match = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert match, page.text[:500]
    return match.group(1)
