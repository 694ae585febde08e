"""`SharedOpen`: callers arriving during an open share it; cancellation and failure.

The app and the Redis Cluster store open through it; the integration tests
(`test_app_open.py`, the cluster suite) show it on real servers, these show each rule alone.
"""

from __future__ import annotations

import asyncio

import pytest

from conveyor.backends.opening import SharedOpen


class Opener:
    """An open that counts its runs and ends when the test says so."""

    def __init__(self) -> None:
        self.runs = 0
        self.release = asyncio.Event()
        self.fail_with: Exception | None = None

    async def open(self) -> None:
        self.runs += 1
        await self.release.wait()
        if self.fail_with is not None:
            raise self.fail_with


async def started(opener: Opener, runs: int) -> None:
    async with asyncio.timeout(5):
        while opener.runs < runs:
            await asyncio.sleep(0)


async def test_callers_arriving_during_an_open_share_it() -> None:
    # Given an open under way
    shared, opener = SharedOpen(), Opener()
    callers = [asyncio.create_task(shared.run(opener.open)) for _ in range(10)]
    await started(opener, 1)
    # When it ends
    opener.release.set()
    await asyncio.gather(*callers)
    # Then ten callers cost one open
    assert opener.runs == 1


async def test_a_cancelled_caller_does_not_cancel_the_open_for_the_others() -> None:
    shared, opener = SharedOpen(), Opener()
    first = asyncio.create_task(shared.run(opener.open))
    second = asyncio.create_task(shared.run(opener.open))
    await started(opener, 1)
    # When the caller that started the open is cancelled
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    # Then the open goes on, and the other caller gets its outcome
    opener.release.set()
    await second
    assert opener.runs == 1


async def test_a_failed_open_reaches_every_caller_and_is_tried_again() -> None:
    shared, opener = SharedOpen(), Opener()
    opener.fail_with = ConnectionError("store down")
    callers = [asyncio.create_task(shared.run(opener.open)) for _ in range(3)]
    await started(opener, 1)
    opener.release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError] * 3
    assert opener.runs == 1
    # When the store is back, the next caller opens again
    opener.fail_with = None
    await shared.run(opener.open)
    assert opener.runs == 2


async def test_an_open_that_ended_is_not_shared_with_later_callers() -> None:
    # The owner remembers a success (Conveyor._opened): a later run is a new open, for
    # instance after the store was closed, or swapped for another.
    shared, opener = SharedOpen(), Opener()
    opener.release.set()
    await shared.run(opener.open)
    await shared.run(opener.open)
    assert opener.runs == 2


async def test_reset_forgets_an_open_in_progress() -> None:
    # Given an open that hangs (the store was closed meanwhile)
    shared, stuck, fresh = SharedOpen(), Opener(), Opener()
    waiting = asyncio.create_task(shared.run(stuck.open))
    await started(stuck, 1)
    # When it is reset, the next caller does not wait for the stuck one
    shared.reset()
    fresh.release.set()
    async with asyncio.timeout(5):
        await shared.run(fresh.open)
    assert fresh.runs == 1
    stuck.release.set()
    await waiting
