"""`Conveyor.open` opens the store once, however many callers arrive while it is opening.

On a private redis-server, so its command counters see only this test: a hundred coroutines
enqueueing on a fresh app cost what one open costs (its PING, one load of the scripts), not a
hundred times that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.redis_server import RedisServer

from conveyor import Conveyor


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def calls(server: RedisServer, command: str) -> int:
    with server.client() as c:
        stats = c.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_callers_arriving_during_the_open_share_it(server: RedisServer) -> None:
    # What one open costs on this server (a PING or two, the scripts loaded once)
    alone = Conveyor(server.url)
    before = calls(server, "ping"), calls(server, "script|load")
    await alone.open()
    one_open = calls(server, "ping") - before[0], calls(server, "script|load") - before[1]
    await alone.aclose()
    assert one_open[0] >= 1

    app = Conveyor(server.url)

    @app.task(name="open.noop")
    async def noop(n: int) -> None: ...

    before = calls(server, "ping"), calls(server, "script|load")
    handles = await asyncio.gather(*(noop.enqueue_async(n) for n in range(100)))
    try:
        assert len({h.id for h in handles}) == 100
        cost = calls(server, "ping") - before[0], calls(server, "script|load") - before[1]
        assert cost == one_open
    finally:
        await app.aclose()


async def test_a_failed_open_is_tried_again(server: RedisServer) -> None:
    app = Conveyor(server.url)

    @app.task(name="open.noop")
    async def noop() -> None: ...

    server.stop()
    results = await asyncio.gather(
        *(noop.enqueue_async() for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, Exception) for r in results), results
    server.start()
    try:
        handle = await noop.enqueue_async()
        assert (await app.backend.get(handle.id)) is not None
    finally:
        await app.aclose()
