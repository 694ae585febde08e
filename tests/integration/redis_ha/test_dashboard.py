"""The dashboard's overview shows where a Redis store lives (the Sentinel service, its
sentinels, the primary and its replicas) and what the servers cannot keep, on real servers."""

from __future__ import annotations

import html

import httpx

from conveyor import Conveyor
from conveyor.dashboard import create_dashboard

from .sentinel_group import SERVICE, SentinelGroup


async def _overview(url: str) -> str:
    app = Conveyor(url)
    asgi = create_dashboard(app)
    try:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            page = await client.get("/")
        assert page.status_code == 200, page.text[-2000:]
        return html.unescape(page.text)
    finally:
        # The in-process transport runs no lifespan: close the dashboard's own handle here.
        await asgi.state.dashboard.close()
        await app.aclose()


async def test_the_overview_shows_the_sentinel_topology(sentinels: SentinelGroup) -> None:
    # Given a store behind the Sentinel service
    primary = sentinels.primary()
    replica = next(s for s in sentinels.servers.values() if s is not primary)
    # When the overview page is read
    page = await _overview(sentinels.url("prefix=ha-dashboard"))
    # Then its Store section names the service, the sentinels, the primary and the replica
    assert '<section id="store" data-live>' in page
    line = next(row for row in page.splitlines() if "servers:" in row)
    assert f"Sentinel service '{SERVICE}'" in line
    assert all(f"127.0.0.1:{s.port}" in line for s in sentinels.sentinels)
    assert f"primary 127.0.0.1:{primary.port}" in line
    assert f"replicas 127.0.0.1:{replica.port} (online" in line
    assert "warning:" not in page


async def test_the_overview_warns_about_a_url_naming_a_replica(sentinels: SentinelGroup) -> None:
    replica = next(s for s in sentinels.servers.values() if s is not sentinels.primary())
    page = await _overview(f"{replica.url}?prefix=ha-dashboard")
    assert f"servers:</span> server 127.0.0.1:{replica.port} (replica)" in page
    assert f"<strong>warning:</strong> 127.0.0.1:{replica.port} is a read-only replica" in page
