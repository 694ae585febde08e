"""The dashboard's defences: strong secrets, the Host guard when mounted, CSRF bound to the
session, login throttling, logout and expiry, trusted proxies, headers on every response,
and queue names checked before pause and resume."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from typer.testing import CliRunner

from conveyor import Conveyor
from conveyor.cli import app as cli
from conveyor.clock import FakeClock
from conveyor.dashboard import create_dashboard
from conveyor.errors import ConfigError
from conveyor.job import JobQuery, State

from .conftest import client_for, csrf

TOKEN = "t0ken-t0ken-t0ken-t0ken"
GENERATE = "secrets.token_urlsafe"
HEADERS = (
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
)


def has_security_headers(response: httpx.Response) -> bool:
    return all(name in response.headers for name in HEADERS) and (
        "frame-ancestors 'none'" in response.headers["content-security-policy"]
    )


def login_csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text[:300]
    return match.group(1)


async def log_in(c: httpx.AsyncClient, token: str = TOKEN) -> httpx.Response:
    form = await c.get("/login")
    return await c.post("/login", data={"csrf_token": login_csrf(form), "token": token})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def token_client(app: Conveyor, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_dashboard(app, token=TOKEN, clock=clock)) as c:
        yield c


# -- 3. secrets strong enough ----------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {"token": "x"},
        {"token": "fifteen-chars!!"},
        {"basic_auth": ":"},
        {"basic_auth": ("", "long-enough-password")},
        {"basic_auth": "ops:short"},
        {"basic_auth": "short"},
    ],
)
def test_weak_credentials_are_refused_with_how_to_make_one(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        create_dashboard(Conveyor("memory://"), **kwargs)
    message = str(caught.value)
    assert "dashboard" in message
    if "user name" not in message:
        assert GENERATE in message


@pytest.mark.parametrize(
    "flags", [["--password", ":"], ["--token", "x"], ["--password", "admin:1234"]]
)
def test_cli_refuses_a_public_bind_with_a_weak_secret(flags: list[str]) -> None:
    with socket.socket() as busy:  # should the check be skipped, fail fast on the port
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        result = CliRunner().invoke(
            cli, ["dashboard", "--url", "memory://", "--host", "0.0.0.0", "--port", port, *flags]
        )
    assert result.exit_code == 2
    assert "in use" not in result.output
    assert "characters long" in result.output or "user name" in result.output


# -- 4. the Host guard when mounted without authentication -----------------------------------
async def test_mounted_without_auth_answers_only_to_loopback_names(app: Conveyor) -> None:
    web = Starlette(routes=[Mount("/admin/jobs", app=create_dashboard(app))])
    async with client_for(web) as c:
        assert (await c.get("/admin/jobs/")).status_code == 200
        for host in ("localhost:8000", "[::1]:8765", "127.0.0.1"):
            assert (await c.get("/admin/jobs/", headers={"Host": host})).status_code == 200
        refused = await c.get("/admin/jobs/api/overview", headers={"Host": "rebind.evil.example"})
    assert refused.status_code == 400 and "allowed_hosts" in refused.text
    assert has_security_headers(refused)


async def test_the_host_app_can_take_over_the_host_check(app: Conveyor) -> None:
    evil = {"Host": "jobs.example.com"}
    async with client_for(create_dashboard(app, trust_host_app_auth=True)) as c:
        assert (await c.get("/", headers=evil)).status_code == 200
    async with client_for(create_dashboard(app, allowed_hosts=["*.example.com"])) as c:
        assert (await c.get("/", headers=evil)).status_code == 200
        assert (await c.get("/", headers={"Host": "example.org"})).status_code == 400
    async with client_for(create_dashboard(app, token=TOKEN)) as c:  # auth guards it instead
        bearer = {"Authorization": f"Bearer {TOKEN}", **evil}
        assert (await c.get("/api/overview", headers=bearer)).status_code == 200


# -- 5. CSRF bound to the session, never issued on a 401 --------------------------------------
async def test_no_csrf_cookie_on_a_401(app: Conveyor) -> None:
    async with client_for(create_dashboard(app, token=TOKEN)) as c:
        denied = await c.get("/api/overview")
        assert denied.status_code == 401
        assert "conveyor_csrf" not in denied.headers.get("set-cookie", "")
    async with client_for(create_dashboard(app, basic_auth="ops:pa55w0rd!")) as c:
        denied = await c.get("/")
        assert denied.status_code == 401 and "set-cookie" not in denied.headers


async def test_a_csrf_token_from_another_session_is_refused(
    app: Conveyor, seeded: dict[str, Any]
) -> None:
    dash = create_dashboard(app, token=TOKEN)
    # Given an attacker who fetched a CSRF cookie and token without logging in
    async with client_for(dash) as attacker:
        page = await attacker.get("/login")
        their_cookie, their_token = attacker.cookies["conveyor_csrf"], login_csrf(page)
    async with client_for(dash) as victim:
        assert (await log_in(victim)).status_code == 303
        # When a forged form carries the attacker's pair into the victim's session
        victim.cookies.set("conveyor_csrf", their_cookie)
        forged = await victim.post("/jobs/retry", data={"csrf_token": their_token, "all": "1"})
        # Then it is refused, and the victim's own token (from a page) still works
        assert forged.status_code == 403 and "CSRF" in forged.text
        dead = await (await app.open()).admin.query(JobQuery(states=(State.DEAD,)))
        assert [j.id for j in dead] == [seeded["dead"]]
        own = await csrf(victim)
        assert own != their_token
        done = await victim.post("/jobs/retry", data={"csrf_token": own, "all": "1"})
        assert done.status_code == 303


# -- 6. throttling, logout, expiry ---------------------------------------------------------------
async def test_wrong_tokens_are_throttled_with_429_and_retry_after(
    token_client: httpx.AsyncClient, clock: FakeClock
) -> None:
    # Given five wrong tokens from one address (free: people mistype)
    for _ in range(5):
        assert (await log_in(token_client, "wrong")).status_code == 401
    # When a sixth fails, the address is locked out, even for the right token
    locked = await log_in(token_client, "wrong")
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
    right = await log_in(token_client)
    assert right.status_code == 429 and "retry-after" in right.headers
    assert has_security_headers(right)
    # Then once the wait is over the right token gets in
    clock.advance(int(right.headers["retry-after"]) + 1)
    assert (await log_in(token_client)).status_code == 303


async def test_wrong_bearer_tokens_are_throttled_too(token_client: httpx.AsyncClient) -> None:
    wrong = {"Authorization": "Bearer not-the-token-at-all"}
    codes = [(await token_client.get("/api/overview", headers=wrong)).status_code for _ in range(7)]
    assert codes[:5] == [401] * 5 and codes[-1] == 429
    right = await token_client.get("/api/overview", headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 429 and "retry-after" in right.headers


async def test_logout_ends_the_session_on_the_server(token_client: httpx.AsyncClient) -> None:
    assert (await log_in(token_client)).status_code == 303
    session = token_client.cookies["conveyor_session"]
    out = await token_client.post("/logout", data={"csrf_token": await csrf(token_client)})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert (
        'conveyor_session=""' in out.headers["set-cookie"]
        or "Max-Age=0" in out.headers["set-cookie"]
    )
    # A kept copy of the cookie no longer works
    token_client.cookies.set("conveyor_session", session)
    assert (await token_client.get("/")).status_code == 303


async def test_logout_needs_the_csrf_token(token_client: httpx.AsyncClient) -> None:
    assert (await log_in(token_client)).status_code == 303
    assert (await token_client.post("/logout", data={})).status_code == 403
    assert (await token_client.get("/")).status_code == 200


async def test_sessions_expire(app: Conveyor, clock: FakeClock) -> None:
    dash = create_dashboard(app, token=TOKEN, clock=clock, session_max_age=3600)
    async with client_for(dash) as c:
        started = await log_in(c)
        assert "Max-Age=3600" in started.headers["set-cookie"]
        clock.advance(3599)
        assert (await c.get("/")).status_code == 200
        clock.advance(2)  # the server checks the signed time, whatever the browser keeps
        assert (await c.get("/")).status_code == 303


async def test_default_session_lasts_twelve_hours(token_client: httpx.AsyncClient) -> None:
    started = await log_in(token_client)
    assert "Max-Age=43200" in started.headers["set-cookie"]


# -- 7. trusted proxies and Secure cookies -------------------------------------------------------
def via(asgi: Any, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=asgi, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


async def test_secure_cookies_behind_a_trusted_proxy_only(app: Conveyor) -> None:
    dash = create_dashboard(app, trusted_proxies=["10.0.0.0/24"])
    https = {"X-Forwarded-Proto": "https"}
    async with via(dash, "10.0.0.7") as proxied:
        assert "secure" in (await proxied.get("/", headers=https)).headers["set-cookie"].lower()
    async with via(dash, "192.0.2.9") as direct:  # anyone else may not claim HTTPS
        assert "secure" not in (await direct.get("/", headers=https)).headers["set-cookie"].lower()
    async with via(create_dashboard(app, secure_cookies=True), "192.0.2.9") as forced:
        assert "secure" in (await forced.get("/")).headers["set-cookie"].lower()


async def test_throttling_sees_the_client_behind_a_trusted_proxy(app: Conveyor) -> None:
    dash = create_dashboard(app, token=TOKEN, trusted_proxies=["10.0.0.1"])
    wrong = {"Authorization": "Bearer not-the-token-at-all"}
    first = {**wrong, "X-Forwarded-For": "198.51.100.1, 10.0.0.1"}
    second = {**wrong, "X-Forwarded-For": "198.51.100.2"}
    async with via(dash, "10.0.0.1") as proxy:
        for _ in range(6):
            await proxy.get("/api/overview", headers=first)
        blocked = await proxy.get("/api/overview", headers=first)
        other = await proxy.get("/api/overview", headers=second)
    assert blocked.status_code == 429 and other.status_code == 401


def test_cli_takes_trusted_proxies_and_refuses_bad_ones() -> None:
    help_text = CliRunner().invoke(cli, ["dashboard", "--help"]).output
    assert "--trusted-proxy" in help_text and "--secure-cookies" in help_text
    result = CliRunner().invoke(
        cli, ["dashboard", "--url", "memory://", "--trusted-proxy", "not-an-ip"]
    )
    assert result.exit_code == 2 and "not-an-ip" in result.output


# -- 8. security headers on every response, 500 included ------------------------------------------
async def test_a_500_carries_the_security_headers(app: Conveyor) -> None:
    dash = create_dashboard(app)
    handle = await dash.state.dashboard.backend()

    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a bug, not an outage")

    handle.admin.stats = broken  # type: ignore[method-assign]
    transport = httpx.ASGITransport(app=dash, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        for path in ("/", "/api/overview"):
            response = await c.get(path)
            assert response.status_code == 500
            assert has_security_headers(response)
            assert "a bug" not in response.text  # details go to the log, not the page
    await dash.state.dashboard.close()


async def test_refusals_carry_the_security_headers(app: Conveyor) -> None:
    async with client_for(create_dashboard(app, token=TOKEN)) as c:
        assert has_security_headers(await c.get("/api/overview"))  # 401
        assert has_security_headers(await c.get("/"))  # 303 to the login
        assert has_security_headers(await c.get("/login"))


# -- 9. queue names checked before pause and resume -------------------------------------------
@pytest.mark.parametrize("queue", ["%20", "mail%07", "q%0Aq", "x" * 201, "%20mail"])
async def test_pause_and_resume_refuse_malformed_queue_names(
    client: httpx.AsyncClient, app: Conveyor, queue: str
) -> None:
    token = await csrf(client)
    for verb in ("pause", "resume"):
        api = await client.post(f"/api/queues/{queue}/{verb}", headers={"X-CSRF-Token": token})
        form = await client.post(f"/queues/{queue}/{verb}", data={"csrf_token": token})
        assert api.status_code == form.status_code == 400, api.text
        assert "queue name" in api.json()["error"]
    assert await (await app.open()).admin.paused_queues() == []


async def test_a_queue_without_jobs_yet_can_be_paused(
    client: httpx.AsyncClient, app: Conveyor
) -> None:
    token = await csrf(client)
    response = await client.post("/api/queues/reports-2030/pause", headers={"X-CSRF-Token": token})
    assert response.status_code == 200
    assert await (await app.open()).admin.paused_queues() == ["reports-2030"]


# -- 1. the store URL in the header and banners ------------------------------------------------
async def test_header_and_banner_hide_a_password_holding_at_signs() -> None:
    with socket.socket() as s:  # a port nobody listens on: the banner path, quickly
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"redis://:p@ss@w0rd@127.0.0.1:{port}/0?password=hunter2"
    dash = create_dashboard(Conveyor(url))
    async with client_for(dash) as c:
        page = await c.get("/")
        api = await c.get("/api/overview")
    for text in (page.text, api.text):
        assert "w0rd" not in text and "p@ss" not in text and "hunter2" not in text
    assert f"redis://:***@127.0.0.1:{port}/0" in page.text
    await dash.state.dashboard.close()
