"""Who may read /debug/*: the dashboard's rules (conveyor.access), on a real metrics server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from tests.integration.cli_support import conveyor_cli

from conveyor import ConfigError
from conveyor.debug import DebugRoutes
from conveyor.metrics.server import MetricsServer

TOKEN = "s3cret-debug-token-0123456789"


class AlwaysLive:
    def live(self) -> list[str]:
        return []

    def ready(self) -> list[str]:
        return []


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def guarded() -> Iterator[str]:
    server = MetricsServer(CollectorRegistry(), AlwaysLive(), debug_token=TOKEN)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.address[1]}"
    finally:
        server.stop()


def test_with_a_token_every_request_needs_it(guarded: str) -> None:
    status, body = get(f"{guarded}/debug/stacks")
    assert status == 401 and "CONVEYOR_DEBUG_TOKEN" in body
    status, _ = get(f"{guarded}/debug/stacks", {"Authorization": "Bearer wrong-token-0123456"})
    assert status == 401
    status, body = get(f"{guarded}/debug/stacks", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and "--- thread 'MainThread'" in body
    # Metrics and probes stay open, as before
    assert get(f"{guarded}/livez")[0] == 200


def test_a_server_beyond_loopback_keeps_debug_off_without_a_token() -> None:
    routes = DebugRoutes(host="0.0.0.0")  # not bound: the rule only
    reply = routes.handle("/debug/stacks", "", host_header="10.0.0.5:9184", authorization=None)
    assert reply.status == 403 and b"CONVEYOR_DEBUG_TOKEN is not set" in reply.body
    assert not routes.enabled
    with_token = DebugRoutes(host="0.0.0.0", token=TOKEN)
    ok = with_token.handle(
        "/debug/stacks", "", host_header="10.0.0.5:9184", authorization=f"Bearer {TOKEN}"
    )
    assert ok.status == 200


def test_a_weak_token_stops_the_server_at_start() -> None:
    with pytest.raises(
        ConfigError, match=r"debug token \(CONVEYOR_DEBUG_TOKEN\) is 5 characters long"
    ):
        MetricsServer(CollectorRegistry(), AlwaysLive(), debug_token="short")


async def test_stacks_list_the_loop_the_server_started_on() -> None:
    server = MetricsServer(CollectorRegistry(), AlwaysLive())
    server.start()  # on this test's running loop
    try:

        async def parked_here() -> None:
            await asyncio.sleep(60)

        task = asyncio.create_task(parked_here(), name="parked")
        await asyncio.sleep(0)
        url = f"http://127.0.0.1:{server.address[1]}/debug/stacks"
        status, body = await asyncio.to_thread(get, url)
        assert status == 200
        assert "--- asyncio task 'parked' (" in body and "in parked_here" in body
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await asyncio.to_thread(server.stop)


def test_conveyor_debug_sends_the_token_from_the_environment(guarded: str, tmp_path: Path) -> None:
    port = guarded.rsplit(":", 1)[1]
    env = {k: v for k, v in os.environ.items() if k != "CONVEYOR_DEBUG_TOKEN"}
    run = conveyor_cli(tmp_path, env)
    # Without the token the server's refusal is shown, exit 2
    refused = run("debug", "stacks", port)
    assert refused.returncode == 2
    assert "401" in refused.stderr and "CONVEYOR_DEBUG_TOKEN" in refused.stderr
    # With it (the variable the worker reads, or --token) the dump is printed
    done = run("debug", "stacks", port, extra_env={"CONVEYOR_DEBUG_TOKEN": TOKEN})
    assert done.returncode == 0, done.stderr
    assert "--- thread 'MainThread'" in done.stdout


def test_a_server_given_no_token_follows_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    # A supervisor's endpoint is made without a token: the process's variable guards it too
    monkeypatch.setenv("CONVEYOR_DEBUG_TOKEN", TOKEN)
    server = MetricsServer(CollectorRegistry(), AlwaysLive())
    server.start()
    try:
        url = f"http://127.0.0.1:{server.address[1]}/debug/stacks"
        assert get(url)[0] == 401
        assert get(url, {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    finally:
        server.stop()
