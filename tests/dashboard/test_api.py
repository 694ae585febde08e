"""The JSON API: what each route answers, its actions, and its OpenAPI document."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from conveyor import Conveyor
from conveyor.dashboard import create_dashboard
from conveyor.dashboard.api import OPERATIONS
from conveyor.job import State

from .conftest import XSS, client_for, csrf


async def test_overview(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    body = (await client.get("/api/overview")).json()
    assert set(body) == {"now", "totals", "queues", "counters", "workers", "telemetry"}
    assert [q["name"] for q in body["queues"]] == ["mail", "reports"]
    assert body["totals"]["ready"] == 1 and body["totals"]["dead"] == 1


async def test_history_fills_gaps_and_computes_failure_rate(
    client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    body = (await client.get("/api/history", params={"minutes": 5})).json()
    assert body["minutes"] == 5 and len(body["series"]) == 5
    minutes = [p["minute"] for p in body["series"]]
    assert minutes == sorted(minutes) and all(b - a == 60 for a, b in itertools.pairwise(minutes))
    busy = [p for p in body["series"] if p["succeeded"] or p["failed"]]
    assert [(p["succeeded"], p["failed"], p["failure_rate"]) for p in busy] == [
        (8, 2, 0.2),
        (5, 0, 0.0),
    ]
    assert body["series"][-1]["failure_rate"] is None
    assert body["queues"] == {
        "mail": {"succeeded": 8, "failed": 2},
        "reports": {"succeeded": 5, "failed": 0},
    }


@pytest.mark.parametrize("minutes", ["0", "abc", "100000"])
async def test_history_rejects_bad_minutes(client: httpx.AsyncClient, minutes: str) -> None:
    response = await client.get("/api/history", params={"minutes": minutes})
    assert response.status_code == 400
    assert "minutes" in response.json()["error"]


async def test_jobs_filters_and_pages(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    every = (await client.get("/api/jobs")).json()["jobs"]
    assert {j["id"] for j in every} >= {seeded["ready"], seeded["dead"], seeded["scheduled"]}
    dead = (await client.get("/api/jobs", params={"state": "dead"})).json()["jobs"]
    assert [j["id"] for j in dead] == [seeded["dead"]]
    two = (await client.get("/api/jobs", params={"state": "ready,scheduled"})).json()["jobs"]
    assert {j["id"] for j in two} == {seeded["ready"], seeded["scheduled"]}
    page = (await client.get("/api/jobs", params={"limit": 1, "offset": 1})).json()
    assert len(page["jobs"]) == 1 and page["offset"] == 1
    assert (await client.get("/api/jobs", params={"state": "nope"})).status_code == 400


async def test_job_detail_decodes_arguments(
    client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    body = (await client.get(f"/api/jobs/{seeded['dead']}")).json()
    assert body["args"] == [XSS] and body["kwargs"] == {}
    assert body["state"] == "dead" and body["last_error"] == f"ValueError: {XSS}"
    assert body["actions"] == ["retry", "delete"]
    assert body["timeline"][0]["event"] == "enqueued"
    missing = await client.get("/api/jobs/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


async def test_workers_and_schedules(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    assert (await client.get("/api/workers")).json() == {"workers": []}
    body = (await client.get("/api/schedules")).json()
    assert body["app_loaded"] is True
    [entry] = body["entries"]
    assert entry["name"] == "nightly-report" and entry["next_run_at"] % 300 == 0


async def test_actions_with_the_csrf_header(
    app: Conveyor, client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    backend = await app.open()
    token = (await client.get("/api/csrf")).json()["csrf_token"]
    headers = {"X-CSRF-Token": token}
    retried = await client.post("/api/jobs/retry", json={"ids": [seeded["dead"]]}, headers=headers)
    assert retried.json() == {
        "action": "retry",
        "count": 1,
        "message": "retried 1 job: back to ready with fresh attempts",
    }
    again = await client.post("/api/jobs/retry", json={"all": True}, headers=headers)
    assert again.json()["count"] == 0
    cancelled = await client.post(f"/api/jobs/{seeded['dead']}/cancel", headers=headers)
    assert cancelled.json()["count"] == 1
    deleted = await client.post("/api/jobs/delete", json={"ids": [seeded["dead"]]}, headers=headers)
    assert deleted.json()["count"] == 1 and await backend.get(seeded["dead"]) is None
    await client.post("/api/queues/mail/pause", headers=headers)
    assert await backend.admin.paused_queues() == ["mail"]
    await client.post("/api/queues/mail/resume", headers=headers)
    assert await backend.admin.paused_queues() == []


@pytest.mark.parametrize("body", [None, [], {"ids": []}, {"ids": [1]}, {"all": "yes"}])
async def test_bad_action_bodies_are_400(client: httpx.AsyncClient, body: Any) -> None:
    token = await csrf(client)
    kwargs: dict[str, Any] = {"content": b"not json"} if body is None else {"json": body}
    response = await client.post("/api/jobs/retry", headers={"X-CSRF-Token": token}, **kwargs)
    assert response.status_code == 400
    assert "ids" in response.json()["error"]


async def test_bearer_token_needs_no_csrf(app: Conveyor, seeded: dict[str, Any]) -> None:
    async with client_for(create_dashboard(app, token="s3cret-s3cret-s3cret")) as c:
        response = await c.post(
            "/api/jobs/retry",
            json={"all": True},
            headers={"Authorization": "Bearer s3cret-s3cret-s3cret"},
        )
    assert response.status_code == 200 and response.json()["count"] == 1
    job = await (await app.open()).get(seeded["dead"])
    assert job is not None and job.state is State.READY


async def test_openapi_documents_every_api_route(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = {(op.method, op.path) for op in OPERATIONS}
    assert documented == served
    dash = create_dashboard(Conveyor("memory://"))
    routes = {
        (m, r.path)
        for r in dash.routes
        if isinstance(r, Route) and r.path.startswith("/api/")
        for m in (r.methods or set()) - {"HEAD"}
    }
    assert routes == served
    schemas = doc["components"]["schemas"]
    for ops in doc["paths"].values():
        for op in ops.values():
            ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[1] in schemas


async def test_job_detail_shows_tagged_arguments_and_results_as_stored(
    app: Conveyor, client: httpx.AsyncClient
) -> None:
    # Given a job whose argument is a datetime (stored as a tagged JSON value)
    when = datetime(2030, 1, 2, 9, 30, tzinfo=UTC)
    job_id = app.tasks["mail.send"].enqueue(when).id
    # Then its API detail and its page show the stored JSON instead of failing
    body = (await client.get(f"/api/jobs/{job_id}")).json()
    assert body["args"] == [{"$datetime": "2030-01-02T09:30:00+00:00"}]
    page = await client.get(f"/jobs/{job_id}")
    assert page.status_code == 200 and "2030-01-02T09:30:00" in page.text
