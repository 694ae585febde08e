"""The manual trigger (the event-worker seed's ``POST /workers/run``): the dashboard's
"Run due entries now" button and ``POST /api/schedules/run`` enqueue each due tick once.

The API runs in process; the button in a real headless Chromium against the real
``conveyor dashboard`` command on SQLite (skipped locally without Chromium or Playwright,
failed under ``CI``). CSRF on this POST is checked with every other action's in
test_security.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.clock import FakeClock
from conveyor.dashboard import create_dashboard
from conveyor.job import JobQuery

from . import test_browser
from .conftest import client_for, csrf
from .test_browser import HERE, ROOT, _answers, free_port, wait_for

#: The browser tests' Chromium and page fixtures, shared.
browser = test_browser.browser
page = test_browser.page

MINUTE = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC, the start of a minute


def minute_app(clock: FakeClock, url: str = "memory://") -> Conveyor:
    app = Conveyor(url, clock=clock)

    @app.cron("* * * * *", name="every-minute")
    def every_minute() -> None: ...

    return app


async def test_the_api_enqueues_each_due_tick_once() -> None:
    clock = FakeClock(MINUTE + 20)
    app = minute_app(clock)
    dashboard = create_dashboard(app)
    try:
        async with client_for(dashboard) as client:
            headers = {"X-CSRF-Token": await csrf(client)}
            # When the trigger is pressed twice within the same minute
            first = (await client.post("/api/schedules/run", headers=headers)).json()
            again = (await client.post("/api/schedules/run", headers=headers)).json()
            # Then the minute's tick is enqueued once
            assert (first["action"], first["count"]) == ("run_due", 1)
            assert "every-minute" in first["message"]
            assert (again["count"], again["message"]) == (
                0,
                "nothing due: every entry's latest tick has run",
            )
            # And the next minute's tick once more
            clock.advance(60)
            later = (await client.post("/api/schedules/run", headers=headers)).json()
            assert later["count"] == 1
            jobs = await (await app.open()).admin.query(JobQuery())
            assert len(jobs) == 2
    finally:
        await dashboard.state.dashboard.close()


async def test_concurrent_triggers_enqueue_a_tick_once(tmp_path: Path) -> None:
    # Given two dashboards (two hosts) on one SQLite store, both pressed at once
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    clock = FakeClock(MINUTE + 5)
    apps = [minute_app(clock, url) for _ in range(2)]
    from conveyor.dashboard import actions

    try:
        stores = [await app.open() for app in apps]
        outcomes = await asyncio.gather(
            *(actions.run_due(app, store) for app, store in zip(apps, stores, strict=True))
        )
        # Then one of them enqueued the tick, and the other found it done
        assert sorted(o.count for o in outcomes) == [0, 1]
        assert len(await (await apps[0].open()).admin.query(JobQuery())) == 1
    finally:
        for app in apps:
            await app.aclose()


async def test_without_the_app_the_trigger_says_what_to_do() -> None:
    from conveyor.backends import create_backend

    dashboard = create_dashboard(create_backend("memory://"))
    try:
        async with client_for(dashboard) as client:
            headers = {"X-CSRF-Token": await csrf(client)}
            response = await client.post("/api/schedules/run", headers=headers)
        assert response.status_code == 409
        assert "--app" in response.text
    finally:
        await dashboard.state.dashboard.close()


@pytest.fixture
def dashboard_url(tmp_path: Path) -> Iterator[str]:
    """``conveyor dashboard --app seeds_app:app`` on a fresh SQLite store; its base URL."""
    from .test_browser import chromium_path

    chromium_path()  # skip (or fail under CI) before starting anything
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{ROOT / 'src'}"}
    env.pop("CONVEYOR_APP", None)
    url = f"sqlite:///{tmp_path / 'trigger.db'}"
    # The dashboard only reads a store that exists: create it first.
    subprocess.run(
        [sys.executable, "-m", "conveyor", "migrate", "--url", url],
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
    )
    args = ["dashboard", "--app", "seeds_app:app", "--port", str(port), "--log-level", "warning"]
    with (tmp_path / "dashboard.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "conveyor", *args, "--url", url],
            cwd=HERE,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(base + "/"), timeout=20, what="the dashboard to answer")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_button_enqueues_the_due_entry(dashboard_url: str, page: Any) -> None:
    # Given the scheduled page of an app whose entry has never run
    page.goto(dashboard_url + "/scheduled")
    assert "never" in page.locator("tr[data-entry=every-minute]").inner_text()
    # When "Run due entries now" is clicked
    page.get_by_role("button", name="Run due entries now").click()
    page.wait_for_url("**/scheduled?notice=*")
    # Then the minute's tick is enqueued, said so, and shown as the entry's last run
    assert "enqueued 1 job due now: every-minute" in page.locator(".notice").inner_text()
    assert "never" not in page.locator("tr[data-entry=every-minute]").inner_text()
    assert page.errors == []
