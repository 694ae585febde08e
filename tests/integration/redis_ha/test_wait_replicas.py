"""?wait_replicas against a primary without the replicas it asks for: every enqueue fails
clearly (the job may be stored: enqueueing it again is safe), and status warns."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from tests.integration.redis_server import RedisServer

from conveyor import Conveyor
from conveyor.errors import BackendUnavailable


@pytest.fixture(scope="module")
def lonely(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("lonely"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_an_enqueue_no_replica_confirmed_fails_clearly(lonely: RedisServer) -> None:
    app = Conveyor(f"{lonely.url}?wait_replicas=1&wait_timeout_ms=50")

    @app.task(name="wait.noop")
    def noop() -> None: ...

    try:
        for enqueue in (noop.enqueue_async, lambda: asyncio.to_thread(noop.enqueue)):
            with pytest.raises(BackendUnavailable) as caught:
                await enqueue()
            message = str(caught.value)
            assert "only 0 of wait_replicas=1 replicas confirmed it within 50 ms" in message
            assert "enqueueing the same job id again is safe" in message
        backend = await app.open()
        # Pausing a queue must survive a failover too
        with pytest.raises(BackendUnavailable, match="applied the pause but only 0 of"):
            await backend.admin.pause_queue("default")
        warnings = await backend.admin.diagnostics()
        assert any("wait_replicas=1 but the primary has 0 replica(s) online" in w for w in warnings)
    finally:
        await app.aclose()
