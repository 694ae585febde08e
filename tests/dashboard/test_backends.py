"""The dashboard on every real store: SQLite, Redis and PostgreSQL.

The other dashboard tests run on the memory store; these run the same pages, JSON API and
actions on real stores (``tests.contract.support.BACKEND_URLS``: a fresh SQLite file, Redis
prefix or PostgreSQL schema per test), with a real in-process `Worker` where a job must
run. Redis and PostgreSQL skip locally without their servers and fail when ``CI`` is set.
The `app` fixture here replaces the memory one, so `seeded` and `client` (conftest) seed
and serve each real store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.contract.support import BACKEND_URLS

from conveyor import Conveyor, Worker
from conveyor.job import Routing

from .conftest import XSS, build_app, csrf, make_dead

REAL_STORES = ["sqlite", "redis", "postgres"]
ESCAPED_XSS = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture(params=REAL_STORES)
async def app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Conveyor]:
    """The dashboard tests' app on an empty real store of each kind in turn."""
    app = build_app(BACKEND_URLS[request.param](tmp_path))
    try:
        yield app
    finally:
        await app.aclose()


async def api_headers(client: httpx.AsyncClient) -> dict[str, str]:
    """The header an API client sends with each POST, its token from ``GET /api/csrf``
    (which also sets the cookie the token is checked against)."""
    answer = (await client.get("/api/csrf")).json()
    return {answer["header"]: answer["csrf_token"]}


async def eventually(
    condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 20
) -> None:
    """Await ``condition()`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def working(app: Conveyor) -> AsyncIterator[Worker]:
    """A real worker for ``app`` running in this event loop, stopped on exit."""
    worker = Worker(app, concurrency=2, reaper=False, poll_interval=0.05)
    run = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        assert await asyncio.wait_for(run, 20) == 0


async def state(client: httpx.AsyncClient, job_id: str) -> str:
    """The job's state, as the API shows it."""
    response = await client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    value: str = response.json()["state"]
    return value


async def ids(client: httpx.AsyncClient, **params: str) -> set[str]:
    """The ids ``GET /api/jobs`` lists with ``params``."""
    response = await client.get("/api/jobs", params=params)
    assert response.status_code == 200, response.text
    return {j["id"] for j in response.json()["jobs"]}


async def test_every_page_renders(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    for path in ["/", "/workers", "/jobs", "/failed", "/scheduled", f"/jobs/{seeded['dead']}"]:
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert XSS not in response.text


async def test_overview_shows_depth_per_priority_oldest_wait_and_paused(
    app: Conveyor, client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    # Given a second, low-priority ready mail job and the reports queue paused,
    await app.tasks["mail.send"].options(priority="low").enqueue_async("b@example.com")
    headers = await api_headers(client)
    paused = await client.post("/api/queues/reports/pause", headers=headers)
    assert paused.json()["count"] == 1
    # When the overview is read, Then each queue shows its depth per priority,
    body = (await client.get("/api/overview")).json()
    queues = {q["name"]: q for q in body["queues"]}
    assert sorted(queues) == ["mail", "reports"]
    mail, reports = queues["mail"], queues["reports"]
    assert mail["ready"] == {"high": 1, "normal": 0, "low": 1}
    assert mail["counts"]["scheduled"] == 1 and mail["counts"]["ready"] == 2
    assert reports["counts"]["dead"] == 1 and reports["ready"] == {"high": 0, "normal": 0, "low": 0}
    assert body["totals"]["ready"] == 2 and body["totals"]["dead"] == 1
    # the wait of its oldest ready job (none when nothing is ready), and the paused flag.
    assert 0 <= mail["oldest_wait"] < 120 and reports["oldest_wait"] is None
    assert (mail["paused"], reports["paused"]) == (False, True)
    page = (await client.get("/")).text
    row = re.search(r'<tr[^>]*data-queue="reports".*?</tr>', page, re.S)
    assert row and "badge-paused" in row.group(0)


async def test_history_after_recording(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    body = (await client.get("/api/history", params={"minutes": 10})).json()
    assert body["minutes"] == 10 and len(body["series"]) == 10
    busy = [p for p in body["series"] if p["succeeded"] or p["failed"]]
    assert [(p["succeeded"], p["failed"], p["failure_rate"]) for p in busy] == [
        (8, 2, 0.2),
        (5, 0, 0.0),
    ]
    assert body["queues"] == {
        "mail": {"succeeded": 8, "failed": 2},
        "reports": {"succeeded": 5, "failed": 0},
    }


async def test_jobs_list_filters_and_search(
    client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    ready, dead, scheduled = seeded["ready"], seeded["dead"], seeded["scheduled"]
    every = (await client.get("/api/jobs")).json()["jobs"]
    assert {j["id"] for j in every} == {ready, dead, scheduled}
    created = [j["created_at"] for j in every]
    assert created == sorted(created, reverse=True)  # newest first
    assert await ids(client, state="dead") == {dead}
    assert await ids(client, state="ready,scheduled") == {ready, scheduled}
    assert await ids(client, queue="mail") == {ready, scheduled}
    assert await ids(client, queue="mail", state="scheduled") == {scheduled}
    assert await ids(client, task="reports.build") == {dead}
    page = (await client.get("/api/jobs", params={"limit": 1, "offset": 2})).json()["jobs"]
    assert [j["id"] for j in page] == [every[2]["id"]]
    # The page's search box: an id opens the job, anything else is a task name.
    found = await client.get("/jobs", params={"q": dead})
    assert found.status_code == 303 and found.headers["location"] == f"/jobs/{dead}"
    by_task = (await client.get("/jobs", params={"q": "mail.send"})).text
    assert ready in by_task and scheduled in by_task and dead not in by_task
    by_filter = (await client.get("/jobs", params={"state": "dead", "queue": "reports"})).text
    assert dead in by_filter and ready not in by_filter
    nothing = (await client.get("/jobs", params={"q": "no-such-job"})).text
    assert "No job has the id" in nothing


async def test_dead_job_detail_shows_its_error_and_traceback_escaped(
    client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    body = (await client.get(f"/api/jobs/{seeded['dead']}")).json()
    assert body["state"] == "dead" and body["attempts"] == 1
    assert body["last_error"] == f"ValueError: {XSS}"
    assert body["traceback"] == f"Traceback:\n  {XSS}"
    assert body["args"] == [XSS] and body["actions"] == ["retry", "delete"]
    events = [e["event"] for e in body["timeline"]]
    assert events[0] == "enqueued" and "attempt failed" in events
    page = (await client.get(f"/jobs/{seeded['dead']}")).text
    assert XSS not in page
    error = re.search(r'id="error">(.*?)</pre>', page, re.S)
    traceback = re.search(r'id="traceback">(.*?)</pre>', page, re.S)
    assert error and error.group(1) == f"ValueError: {ESCAPED_XSS}"
    assert traceback and ESCAPED_XSS in traceback.group(1)
    missing = await client.get("/api/jobs/no-such-job")
    assert missing.status_code == 404


async def test_retry_one_then_all_and_a_worker_runs_them_to_success(
    app: Conveyor, client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    # Given three dead jobs,
    backend = await app.open()
    build = app.tasks["reports.build"]
    for name in ("a", "b"):
        await build.enqueue_async(name)
        await make_dead(backend, "reports", "boom", "tb")
    dead = await ids(client, state="dead")
    assert len(dead) == 3 and seeded["dead"] in dead
    # When one is retried through the API,
    retried = await client.post(
        "/api/jobs/retry", json={"ids": [seeded["dead"]]}, headers=await api_headers(client)
    )
    assert retried.status_code == 200 and retried.json()["count"] == 1
    assert await state(client, seeded["dead"]) == "ready"
    assert await ids(client, state="dead") == dead - {seeded["dead"]}
    # and the rest with the failed page's "retry all" form,
    token = await csrf(client)
    form = await client.post(
        "/jobs/retry", data={"csrf_token": token, "all": "1", "next": "/failed"}
    )
    assert form.status_code == 303 and form.headers["location"].startswith("/failed?notice=")
    assert "retried 2 jobs" in (await client.get(form.headers["location"])).text
    assert await ids(client, state="dead") == set()
    detail = (await client.get(f"/api/jobs/{seeded['dead']}")).json()
    assert detail["state"] == "ready" and detail["attempts"] == 0
    # Then a real worker runs all three to success.
    async with working(app):

        async def all_succeeded() -> bool:
            return await ids(client, state="succeeded") >= dead

        await eventually(all_succeeded, "the retried jobs to succeed")
    assert "state-succeeded" in (await client.get(f"/jobs/{seeded['dead']}")).text


async def test_delete_one_and_all_dead(
    app: Conveyor, client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    backend = await app.open()
    headers = await api_headers(client)
    one = await client.post("/api/jobs/delete", json={"ids": [seeded["dead"]]}, headers=headers)
    assert one.json()["count"] == 1
    assert (await client.get(f"/api/jobs/{seeded['dead']}")).status_code == 404
    # A waiting job is not deleted: it must be cancelled first.
    waiting = await client.post(
        "/api/jobs/delete", json={"ids": [seeded["ready"]]}, headers=headers
    )
    assert waiting.json()["count"] == 0 and "cancel" in waiting.json()["message"]
    assert await state(client, seeded["ready"]) == "ready"
    # Given two more dead jobs, When "delete all" is submitted, Then only dead jobs go.
    build = app.tasks["reports.build"]
    for name in ("a", "b"):
        await build.enqueue_async(name)
        await make_dead(backend, "reports", "boom", "tb")
    assert len(await ids(client, state="dead")) == 2
    token = await csrf(client)
    form = await client.post(
        "/jobs/delete", data={"csrf_token": token, "all": "1", "next": "/failed"}
    )
    assert form.status_code == 303
    assert "deleted 2 jobs" in (await client.get(form.headers["location"])).text
    assert await ids(client, state="dead") == set()
    assert await ids(client) == {seeded["ready"], seeded["scheduled"]}


async def test_cancel_a_ready_and_a_scheduled_job(
    client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    headers = await api_headers(client)
    cancelled = await client.post(f"/api/jobs/{seeded['ready']}/cancel", headers=headers)
    assert cancelled.json()["count"] == 1
    body = (await client.get(f"/api/jobs/{seeded['ready']}")).json()
    assert body["state"] == "cancelled" and body["actions"] == ["delete"]
    again = await client.post(f"/api/jobs/{seeded['ready']}/cancel", headers=headers)
    assert again.json()["count"] == 0
    token = await csrf(client)
    form = await client.post(f"/jobs/{seeded['scheduled']}/cancel", data={"csrf_token": token})
    assert form.status_code == 303
    assert await state(client, seeded["scheduled"]) == "cancelled"
    assert await ids(client, state="cancelled") == {seeded["ready"], seeded["scheduled"]}


async def test_a_paused_queue_is_not_worked_until_resumed(
    app: Conveyor, client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    # Given the mail queue paused from the dashboard, and a worker on every queue,
    paused = await client.post("/api/queues/mail/pause", headers=await api_headers(client))
    assert paused.json()["count"] == 1
    assert await (await app.open()).admin.paused_queues() == ["mail"]
    witness = (await app.tasks["reports.build"].enqueue_async("witness")).id
    async with working(app):
        # When the worker has run a job of another queue, enqueued after the pause,
        async def witness_done() -> bool:
            return await state(client, witness) == "succeeded"

        await eventually(witness_done, "the unpaused queue's job to succeed")
        # Then the paused queue's job was not claimed,
        detail = (await client.get(f"/api/jobs/{seeded['ready']}")).json()
        assert (detail["state"], detail["attempts"]) == ("ready", 0)
        assert "badge-paused" in (await client.get("/")).text
        # and once resumed with the overview's button, it runs.
        token = await csrf(client)
        form = await client.post("/queues/mail/resume", data={"csrf_token": token, "next": "/"})
        assert form.status_code == 303
        overview = (await client.get("/api/overview")).json()
        assert [q["paused"] for q in overview["queues"]] == [False, False]

        async def ready_done() -> bool:
            return await state(client, seeded["ready"]) == "succeeded"

        await eventually(ready_done, "the resumed queue's job to succeed")
    assert await state(client, seeded["scheduled"]) == "scheduled"


async def test_workers_page_and_api_show_a_live_worker(
    app: Conveyor, client: httpx.AsyncClient
) -> None:
    async with working(app) as worker:

        async def registered() -> bool:
            rows = (await client.get("/api/workers")).json()["workers"]
            return [w["id"] for w in rows] == [worker.id]

        await eventually(registered, "the worker to register")
        [row] = (await client.get("/api/workers")).json()["workers"]
        assert row["pid"] == os.getpid() and row["queues"] == ["*"]
        assert row["concurrency"] == 2 and row["uptime"] >= 0
        assert (await client.get("/api/overview")).json()["workers"] == 1
        assert worker.id in (await client.get("/workers")).text
    # Then a stopped worker leaves the list.
    assert (await client.get("/api/workers")).json() == {"workers": []}


async def test_scheduled_page_lists_cron_entries_and_delayed_jobs(
    app: Conveyor, client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    page = (await client.get("/scheduled")).text
    assert 'data-entry="nightly-report"' in page and "*/5 * * * *" in page
    assert seeded["scheduled"] in page and seeded["ready"] not in page
    [entry] = (await client.get("/api/schedules")).json()["entries"]
    assert entry["name"] == "nightly-report"
    assert entry["next_run_at"] % 300 == 0 and entry["next_run_at"] > app.clock.now()
    delayed = (await client.get(f"/api/jobs/{seeded['scheduled']}")).json()
    assert delayed["state"] == "scheduled" and delayed["run_at"] > app.clock.now() + 3000


async def test_actions_that_do_not_apply_change_nothing(
    app: Conveyor, client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    headers = await api_headers(client)
    ready, dead = seeded["ready"], seeded["dead"]
    # Retrying a job that is not dead, or that does not exist, retries nothing.
    retried = await client.post("/api/jobs/retry", json={"ids": [ready, "nope"]}, headers=headers)
    assert retried.json()["count"] == 0 and await state(client, ready) == "ready"
    deleted = await client.post("/api/jobs/delete", json={"ids": ["nope"]}, headers=headers)
    assert deleted.json()["count"] == 0
    cancelled = await client.post("/api/jobs/nope/cancel", headers=headers)
    assert cancelled.status_code == 404 and "job nope does not exist" in cancelled.json()["error"]
    # A dead job cannot be cancelled; a running one cannot be deleted.
    assert (await client.post(f"/api/jobs/{dead}/cancel", headers=headers)).json()["count"] == 0
    assert await state(client, dead) == "dead"
    backend = await app.open()
    [running] = await backend.claim("test-worker", Routing(queues=("mail",)), 1, 30.0)
    assert await ids(client, state="running") == {running.id}
    gone = await client.post("/api/jobs/delete", json={"ids": [running.id]}, headers=headers)
    assert gone.json()["count"] == 0 and await state(client, running.id) == "running"
    # Pausing a queue that has no jobs yet lists it, paused, on the overview.
    await client.post("/api/queues/later/pause", headers=headers)
    queues = {q["name"]: q for q in (await client.get("/api/overview")).json()["queues"]}
    assert queues["later"]["paused"] is True and queues["later"]["oldest_wait"] is None
    # Searching for markup finds nothing and shows it escaped.
    page = (await client.get("/jobs", params={"q": XSS})).text
    assert "No job has the id" in page and XSS not in page
