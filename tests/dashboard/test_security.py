"""CSRF on every POST, read-only mode, authentication, headers and the Host check."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from conveyor import Conveyor
from conveyor.dashboard import create_dashboard
from conveyor.dashboard.security import is_loopback
from conveyor.job import JobQuery, State

from .conftest import client_for, csrf


def post_routes() -> list[str]:
    """Every POST path of the dashboard, with sample path parameters."""
    dash = create_dashboard(Conveyor("memory://"))
    paths = [
        r.path
        for r in dash.routes
        if isinstance(r, Route) and "POST" in (r.methods or set()) and r.path != "/login"
    ]
    return [p.replace("{job_id}", "JOB").replace("{queue}", "mail") for p in paths]


def test_every_action_is_covered() -> None:
    assert len(post_routes()) == 13


@pytest.mark.parametrize("path", post_routes())
@pytest.mark.parametrize("token", [None, "", "forged.0000", "WRONG"])
async def test_every_post_needs_the_csrf_token(
    app: Conveyor,
    client: httpx.AsyncClient,
    seeded: dict[str, Any],
    path: str,
    token: str | None,
) -> None:
    backend = await app.open()
    await csrf(client)  # the session has a valid cookie; the request does not repeat it
    path = path.replace("JOB", seeded["dead"])
    data = {"id": seeded["dead"], "all": "1"}
    if token is not None:
        data["csrf_token"] = token
    headers = {} if token is None else {"X-CSRF-Token": token}
    form = await client.post(path, data=data)
    api = await client.post(path, json={"all": True}, headers=headers)
    assert form.status_code == api.status_code == 403
    assert "CSRF" in form.text and "CSRF" in api.text
    assert [j.id for j in await backend.admin.query(JobQuery(states=(State.DEAD,)))] == [
        seeded["dead"]
    ]
    assert await backend.admin.paused_queues() == []


async def test_csrf_cookie_from_another_dashboard_is_refused(
    app: Conveyor, seeded: dict[str, Any]
) -> None:
    async with client_for(create_dashboard(app)) as other:
        foreign = await csrf(other)
    async with client_for(create_dashboard(app)) as c:
        c.cookies.set("conveyor_csrf", foreign)
        response = await c.post("/jobs/retry", data={"csrf_token": foreign, "all": "1"})
    assert response.status_code == 403


async def test_csrf_cookie_is_strict_and_http_only(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    cookie = response.headers["set-cookie"].lower()
    assert "conveyor_csrf=" in cookie and "httponly" in cookie and "samesite=strict" in cookie


async def test_read_only_hides_actions_and_refuses_posts(
    app: Conveyor, seeded: dict[str, Any]
) -> None:
    async with client_for(create_dashboard(app, read_only=True)) as c:
        token = await csrf(c)
        for path in ("/", "/failed", f"/jobs/{seeded['dead']}"):
            page = (await c.get(path)).text
            assert 'method="post"' not in page
            assert "read-only" in page
        response = await c.post("/jobs/retry", data={"csrf_token": token, "all": "1"})
        assert response.status_code == 403 and "read-only" in response.text
        api = await c.post("/api/jobs/retry", json={"all": True}, headers={"X-CSRF-Token": token})
        assert api.status_code == 403 and "read-only" in api.json()["error"]
    job = await (await app.open()).get(seeded["dead"])
    assert job is not None and job.state is State.DEAD


async def test_token_auth_pages_redirect_to_login_and_api_says_401(app: Conveyor) -> None:
    async with client_for(create_dashboard(app, token="s3cret-s3cret-s3cret")) as c:
        page = await c.get("/")
        assert page.status_code == 303 and page.headers["location"] == "/login"
        api = await c.get("/api/overview")
        assert api.status_code == 401 and "Bearer" in api.json()["error"]
        assert (
            await c.get("/api/overview", headers={"Authorization": "Bearer nope"})
        ).status_code == 401
        assert (
            await c.get("/api/overview", headers={"Authorization": "Bearer s3cret-s3cret-s3cret"})
        ).status_code == 200
        assert (await c.get("/static/dashboard.css")).status_code == 200


async def test_token_login_sets_a_session(app: Conveyor) -> None:
    async with client_for(create_dashboard(app, token="s3cret-s3cret-s3cret")) as c:
        form = await c.get("/login")
        assert form.status_code == 200
        token = form.text.split('name="csrf_token" value="')[1].split('"')[0]
        wrong = await c.post("/login", data={"csrf_token": token, "token": "guess"})
        assert wrong.status_code == 401 and "wrong token" in wrong.text
        right = await c.post("/login", data={"csrf_token": token, "token": "s3cret-s3cret-s3cret"})
        assert right.status_code == 303
        assert "httponly" in right.headers["set-cookie"].lower()
        assert (await c.get("/")).status_code == 200


async def test_login_without_csrf_is_refused(app: Conveyor) -> None:
    async with client_for(create_dashboard(app, token="s3cret-s3cret-s3cret")) as c:
        response = await c.post("/login", data={"token": "s3cret-s3cret-s3cret"})
        assert response.status_code == 401
        assert (await c.get("/")).status_code == 303


def _basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def test_basic_auth(app: Conveyor) -> None:
    async with client_for(create_dashboard(app, basic_auth="ops:pa55w0rd")) as c:
        denied = await c.get("/")
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"].startswith("Basic")
        assert (await c.get("/", headers=_basic("ops", "nope"))).status_code == 401
        assert (await c.get("/", headers=_basic("root", "pa55w0rd"))).status_code == 401
        assert (await c.get("/", headers={"Authorization": "Basic !!!"})).status_code == 401
        assert (await c.get("/", headers=_basic("ops", "pa55w0rd"))).status_code == 200


async def test_security_headers_on_pages_and_api(client: httpx.AsyncClient) -> None:
    for path in ("/", "/api/overview", "/jobs/nope"):
        headers = (await client.get(path)).headers
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"


async def test_no_inline_script_in_pages(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    for path in ("/", f"/jobs/{seeded['dead']}", "/failed"):
        page = (await client.get(path)).text
        assert page.count("<script") == 1 and "<script src=" in page
        assert " onclick=" not in page and " onsubmit=" not in page


async def test_notices_cannot_be_spoofed(client: httpx.AsyncClient) -> None:
    page = await client.get("/", params={"notice": "visit evil.example", "sig": "00"})
    assert "visit evil.example" not in page.text


async def test_redirect_after_an_action_stays_inside_the_dashboard(
    client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    token = await csrf(client)
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = await client.post(
            "/jobs/retry", data={"csrf_token": token, "all": "1", "next": target}
        )
        assert response.headers["location"].startswith("/?notice=")


async def test_allowed_hosts_refuse_other_host_headers(app: Conveyor) -> None:
    dash = create_dashboard(app, allowed_hosts=["127.0.0.1", "localhost"])
    async with client_for(dash) as c:
        assert (await c.get("/")).status_code == 200
        assert (await c.get("/", headers={"Host": "rebind.evil.example"})).status_code == 400


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("example.com", False),
        ("::", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
