"""Every page renders what the store holds, escapes what it shows, and its buttons work."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from conveyor import Conveyor
from conveyor.backends.memory import MemoryBackend
from conveyor.dashboard import create_dashboard
from conveyor.errors import BackendUnavailable
from conveyor.job import JobQuery, State

from .conftest import XSS, client_for, csrf

PAGES = ["/", "/workers", "/jobs", "/failed", "/scheduled"]


@pytest.mark.parametrize("path", PAGES)
async def test_each_page_renders_seeded_data(
    client: httpx.AsyncClient, seeded: dict[str, Any], path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/static/dashboard.js" in response.text
    assert 'aria-current="page"' in response.text


@pytest.mark.parametrize("path", PAGES)
async def test_each_page_has_an_empty_state(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    if path != "/scheduled":  # with --app the cron entry is there even on an empty store
        assert 'class="empty"' in response.text


async def test_overview_shows_depth_per_priority_paused_and_oldest_wait(
    app: Conveyor, client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    backend = await app.open()
    await backend.admin.pause_queue("mail")
    page = (await client.get("/")).text
    assert 'data-queue="mail"' in page and 'data-queue="reports"' in page
    assert "badge-paused" in page
    assert 'data-chart="throughput"' in page and 'data-chart="failure"' in page
    api = (await client.get("/api/overview")).json()
    mail = next(q for q in api["queues"] if q["name"] == "mail")
    assert mail["paused"] is True
    assert mail["ready"] == {"high": 1, "normal": 0, "low": 0}
    assert mail["counts"]["scheduled"] == 1
    assert mail["oldest_wait"] is not None and mail["oldest_wait"] >= 0
    assert api["totals"]["dead"] == 1


async def test_job_detail_shows_arguments_error_traceback_and_timeline_escaped(
    client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    page = (await client.get(f"/jobs/{seeded['dead']}")).text
    assert XSS not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'id="args"' in page and 'id="traceback"' in page and 'id="error"' in page
    assert "enqueued" in page and "attempt failed" in page
    assert "Retry" in page and "Delete" in page


async def test_jobs_list_filters_by_state_queue_and_task(
    client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    dead = (await client.get("/jobs", params={"state": "dead"})).text
    assert seeded["dead"] in dead and seeded["ready"] not in dead
    mail = (await client.get("/jobs", params={"queue": "mail"})).text
    assert seeded["ready"] in mail and seeded["dead"] not in mail
    by_task = (await client.get("/jobs", params={"q": "reports.build"})).text
    assert seeded["dead"] in by_task and seeded["ready"] not in by_task


async def test_search_by_id_opens_the_job(
    client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    response = await client.get("/jobs", params={"q": seeded["ready"]})
    assert response.status_code == 303
    assert response.headers["location"] == f"/jobs/{seeded['ready']}"


async def test_search_without_match_says_so(client: httpx.AsyncClient) -> None:
    page = (await client.get("/jobs", params={"q": XSS})).text
    assert "No job has the id" in page and XSS not in page


async def test_bad_filter_is_a_400_with_a_message(client: httpx.AsyncClient) -> None:
    response = await client.get("/jobs", params={"state": "lost"})
    assert response.status_code == 400
    assert "unknown state &#39;lost&#39;" in response.text


async def test_unknown_job_is_a_404_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/jobs/nope")
    assert response.status_code == 404
    assert "job nope does not exist" in response.text


async def test_retry_one_failed_job_from_its_form(
    app: Conveyor, client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    token = await csrf(client)
    response = await client.post(
        "/jobs/retry", data={"csrf_token": token, "id": seeded["dead"], "next": "/failed"}
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/failed?notice=")
    job = await (await app.open()).get(seeded["dead"])
    assert job is not None and job.state is State.READY
    page = (await client.get(response.headers["location"])).text
    assert "retried 1 job" in page


async def test_retry_all_and_delete_all(
    app: Conveyor, client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    backend = await app.open()
    token = await csrf(client)
    await client.post("/jobs/retry", data={"csrf_token": token, "all": "1"})
    assert await backend.admin.query(JobQuery(states=(State.DEAD,))) == []
    [job] = await backend.admin.query(JobQuery(states=(State.READY,), queue="reports"))
    # Given the job failed again, When "delete all" is clicked, Then the dead store is empty.
    from .conftest import make_dead

    await make_dead(backend, "reports", "boom", "tb")
    await client.post("/jobs/delete", data={"csrf_token": token, "all": "1"})
    assert await backend.get(job.id) is None


async def test_delete_one_job_and_cancel_one(
    app: Conveyor, client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    backend = await app.open()
    token = await csrf(client)
    await client.post("/jobs/delete", data={"csrf_token": token, "id": seeded["dead"]})
    assert await backend.get(seeded["dead"]) is None
    await client.post(f"/jobs/{seeded['ready']}/cancel", data={"csrf_token": token})
    job = await backend.get(seeded["ready"])
    assert job is not None and job.state is State.CANCELLED


async def test_pause_and_resume_a_queue(
    app: Conveyor, client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    backend = await app.open()
    token = await csrf(client)
    await client.post("/queues/mail/pause", data={"csrf_token": token})
    assert await backend.admin.paused_queues() == ["mail"]
    assert "Resume" in (await client.get("/")).text
    await client.post("/queues/mail/resume", data={"csrf_token": token})
    assert await backend.admin.paused_queues() == []


async def test_scheduled_page_lists_cron_entries_with_next_run_and_delayed_jobs(
    client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    page = (await client.get("/scheduled")).text
    assert 'data-entry="nightly-report"' in page
    assert "*/5 * * * *" in page
    assert seeded["scheduled"] in page


async def test_scheduled_page_without_app_explains_how_to_see_cron_entries() -> None:
    async with client_for(create_dashboard(MemoryBackend())) as c:
        page = (await c.get("/scheduled")).text
    assert "--app module:app" in page


async def test_workers_page_shows_live_workers(app: Conveyor, client: httpx.AsyncClient) -> None:
    from conveyor.job import WorkerInfo

    backend = await app.open()
    info = WorkerInfo(
        id="w-1",
        host="box",
        pid=42,
        started_at=app.clock.now() - 90,
        queues=("mail",),
        stats={"processed": 7, "running": 1, "concurrency": 4},
    )
    await backend.telemetry.register_worker(info, ttl=60)
    page = (await client.get("/workers")).text
    assert "w-1" in page and "1/4" in page and ">7<" in page


class _Down(MemoryBackend):
    """A store that cannot be reached (its URL has a password that must not be shown)."""

    def clone(self) -> _Down:
        return _Down("redis://:hunter2@db.internal:6379/0")

    async def open(self) -> None:
        raise BackendUnavailable("cannot connect to redis://:hunter2@db.internal:6379/0")


@pytest.mark.parametrize("path", ["/", "/jobs", "/failed"])
async def test_backend_down_shows_a_banner_not_a_traceback(path: str) -> None:
    async with client_for(create_dashboard(_Down())) as c:
        response = await c.get(path)
    assert response.status_code == 503
    assert "Backend unavailable" in response.text
    assert "hunter2" not in response.text and "Traceback" not in response.text


async def test_backend_down_is_a_json_503_in_the_api() -> None:
    async with client_for(create_dashboard(_Down())) as c:
        response = await c.get("/api/overview")
    assert response.status_code == 503
    assert "cannot connect" in response.json()["error"]
    assert "hunter2" not in response.text


async def test_mounted_under_a_prefix_links_and_redirects_stay_inside(
    app: Conveyor, seeded: dict[str, Any]
) -> None:
    outer = Starlette(routes=[Mount("/admin/queues", app=create_dashboard(app))])
    async with client_for(outer) as c:
        page = await c.get("/admin/queues/")
        assert page.status_code == 200
        assert 'href="/admin/queues/static/dashboard.css"' in page.text
        assert 'href="/admin/queues/failed"' in page.text
        assert (await c.get("/admin/queues/static/dashboard.js")).status_code == 200
        assert (await c.get("/admin/queues/api/overview")).status_code == 200
        token = await csrf(c, "/admin/queues")
        response = await c.post(
            "/admin/queues/jobs/retry",
            data={"csrf_token": token, "id": seeded["dead"], "next": "/admin/queues/failed"},
        )
        assert response.status_code == 303
        assert response.headers["location"].startswith("/admin/queues/failed?")
        openapi = (await c.get("/admin/queues/api/openapi.json")).json()
        assert openapi["servers"] == [{"url": "/admin/queues"}]


async def test_static_files_are_served_without_a_cdn(client: httpx.AsyncClient) -> None:
    script = await client.get("/static/dashboard.js")
    css = await client.get("/static/dashboard.css")
    assert script.status_code == css.status_code == 200
    assert "http://" not in script.text and "https://" not in script.text
    page = (await client.get("/")).text
    assert "https://" not in page and "http://" not in page
