"""The dashboard on stores that lack capabilities: refused up front without `Admin`, and
every page still rendering without `Telemetry` or `Scheduling`, saying what is not kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tests.unit.partial_stores import patch_apps
from typer.testing import CliRunner

from conveyor import Conveyor
from conveyor.backends import create_backend
from conveyor.backends.base import Backend
from conveyor.backends.capabilities import Unsupported
from conveyor.cli import app as cli
from conveyor.dashboard import create_dashboard

from .conftest import build_app, client_for

PAGES = ["/", "/workers", "/jobs", "/failed", "/scheduled"]


def test_a_store_without_admin_is_refused_at_creation_in_one_line() -> None:
    with pytest.raises(Unsupported) as info:
        create_dashboard(create_backend("example://"))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("the example:// store cannot list, count, repair or pause jobs")
    assert "the dashboard needs a store that has it" in message


def test_conveyor_dashboard_on_such_a_store_exits_2_before_serving() -> None:
    result = CliRunner().invoke(cli, ["dashboard", "--url", "example://", "--port", "0"])
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: the example:// store cannot list, count, repair or pause")
    assert "Traceback" not in result.output


async def _client(source: Conveyor | Backend) -> AsyncIterator[httpx.AsyncClient]:
    dashboard = create_dashboard(source)
    try:
        async with client_for(dashboard) as c:
            yield c
    finally:
        await dashboard.state.dashboard.close()


@pytest.fixture
async def no_telemetry(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    """A dashboard on a store with a job in it that keeps no history and no worker registry."""
    store = patch_apps(monkeypatch, "admin", "limits", "scheduling")
    app = Conveyor("partial://")

    @app.task(name="mail.send", queue="mail")
    def send(to: str) -> None:
        """Send one mail."""

    send.enqueue("a@example.com")
    async for c in _client(store):
        yield c


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_renders_without_telemetry(
    no_telemetry: httpx.AsyncClient, path: str
) -> None:
    response = await no_telemetry.get(path)
    assert response.status_code == 200, response.text[:500]


async def test_the_overview_says_there_is_no_history_where_the_charts_would_be(
    no_telemetry: httpx.AsyncClient,
) -> None:
    page = (await no_telemetry.get("/")).text
    assert "This store does not keep job history" in page
    assert "<canvas" not in page  # nothing for the script to fetch /api/history for
    assert 'data-total="workers"' not in page
    assert 'data-queue="mail"' in page  # the queues are there as ever


async def test_the_workers_page_says_there_is_no_worker_registry(
    no_telemetry: httpx.AsyncClient,
) -> None:
    page = (await no_telemetry.get("/workers")).text
    assert "This store keeps no worker registry" in page
    assert "<table" not in page


async def test_the_api_answers_501_for_history_and_workers_and_null_workers_in_overview(
    no_telemetry: httpx.AsyncClient,
) -> None:
    for path in ("/api/history", "/api/workers"):
        response = await no_telemetry.get(path)
        assert response.status_code == 501
        error = response.json()["error"]
        assert "does not keep job history or a worker registry" in error
        assert "\n" not in error
    overview = (await no_telemetry.get("/api/overview")).json()
    assert overview["workers"] is None
    assert overview["telemetry"] is False
    assert overview["totals"]["ready"] == 1


async def test_with_telemetry_the_overview_says_so(client: httpx.AsyncClient) -> None:
    overview = (await client.get("/api/overview")).json()
    assert overview["telemetry"] is True
    assert overview["workers"] == 0


async def test_cron_entries_show_their_last_run_as_not_recorded_without_scheduling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an app with a cron entry on a store that records no ticks
    patch_apps(monkeypatch, "admin", "telemetry")
    app = build_app("partial://")
    async for client in _client(app):
        # When the scheduled page and its API are read
        page = await client.get("/scheduled")
        api: dict[str, Any] = (await client.get("/api/schedules")).json()
        # Then the entry is listed, its last run marked as not recorded
        assert page.status_code == 200
        assert 'data-entry="nightly-report"' in page.text
        assert "This store does not record cron ticks" in page.text
        assert "not recorded" in page.text
        assert api["ticks_recorded"] is False
        assert [e["last_run"] for e in api["entries"]] == [None]


async def test_with_scheduling_the_last_runs_are_recorded(client: httpx.AsyncClient) -> None:
    api = (await client.get("/api/schedules")).json()
    assert api["ticks_recorded"] is True
    assert "This store does not record cron ticks" not in (await client.get("/scheduled")).text
