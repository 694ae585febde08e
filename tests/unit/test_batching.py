"""The shared batcher: a lone call goes at once, calls made during a flush share the next one,
and every caller gets its own result, its batch's error, or the flush's cancellation."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.backends.batching import MAX_BATCH, Batcher

#: A deadline on conditions that hold within milliseconds; a test that hits it has hung.
PROMPT = 5.0


class Gate:
    """A flush that records each batch and holds it until the test opens the gate."""

    def __init__(self, *, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.open = asyncio.Event()
        self.entered = asyncio.Event()
        self.fail_on = fail_on

    async def __call__(self, items: list[int]) -> list[str]:
        self.batches.append(list(items))
        self.entered.set()
        await self.open.wait()
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"item {self.fail_on} broke its batch")
        return [f"r{i}" for i in items]


async def test_a_lone_call_goes_at_once_without_waiting_for_a_timer() -> None:
    calls: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        calls.append(items)
        return [i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher(flush)

    assert await asyncio.wait_for(batcher.submit(7), PROMPT) == 70
    assert calls == [[7]]


async def test_calls_made_during_a_flush_share_the_next_one_and_get_their_own_results() -> None:
    # Given a flush in flight for one call
    gate = Gate()
    batcher: Batcher[int, str] = Batcher(gate)
    first = asyncio.create_task(batcher.submit(0))
    await asyncio.wait_for(gate.entered.wait(), PROMPT)

    # When 20 more calls arrive while it is in flight
    later = [asyncio.create_task(batcher.submit(i)) for i in range(1, 21)]
    await asyncio.sleep(0)
    gate.open.set()
    results = await asyncio.wait_for(asyncio.gather(first, *later), PROMPT)

    # Then they rode one second flush, and each caller got the result for its own item
    assert gate.batches == [[0], list(range(1, 21))]
    assert results == [f"r{i}" for i in range(21)]


async def test_a_batch_holds_at_most_max_batch_items() -> None:
    gate = Gate()
    batcher: Batcher[int, str] = Batcher(gate)
    first = asyncio.create_task(batcher.submit(-1))
    await asyncio.wait_for(gate.entered.wait(), PROMPT)
    many = [asyncio.create_task(batcher.submit(i)) for i in range(2 * MAX_BATCH + 3)]
    await asyncio.sleep(0)
    gate.open.set()

    await asyncio.wait_for(asyncio.gather(first, *many), PROMPT)

    assert [len(b) for b in gate.batches] == [1, MAX_BATCH, MAX_BATCH, 3]


async def test_an_error_reaches_every_caller_of_its_batch_and_no_other() -> None:
    # Given a flush in flight, then a batch holding an item the flush fails on
    gate = Gate(fail_on=2)
    batcher: Batcher[int, str] = Batcher(gate)
    first = asyncio.create_task(batcher.submit(0))
    await asyncio.wait_for(gate.entered.wait(), PROMPT)
    doomed = [asyncio.create_task(batcher.submit(i)) for i in (1, 2, 3)]
    await asyncio.sleep(0)
    gate.open.set()

    # Then the first batch succeeded and every caller of the failing batch got its error
    assert await asyncio.wait_for(first, PROMPT) == "r0"
    for task in doomed:
        with pytest.raises(ValueError, match="item 2 broke its batch"):
            await asyncio.wait_for(task, PROMPT)

    # And the batcher goes on: the next call gets its own flush
    assert await asyncio.wait_for(batcher.submit(4), PROMPT) == "r4"


async def test_a_flush_returning_the_wrong_number_of_results_fails_its_callers() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    batcher: Batcher[int, int] = Batcher(short)

    with pytest.raises(RuntimeError, match="returned 0 results for 1 items"):
        await asyncio.wait_for(batcher.submit(1), PROMPT)


async def test_a_cancelled_flush_cancels_its_callers_and_the_queued_ones() -> None:
    # Given a flush in flight and calls queued behind it
    started = asyncio.Event()

    async def flush(items: list[int]) -> list[int]:
        started.set()
        await asyncio.Event().wait()  # until cancelled
        return items

    batcher: Batcher[int, int] = Batcher(flush, name="test-flush")
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.wait_for(started.wait(), PROMPT)
    queued = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0)

    # When the flush task is cancelled (as asyncio.run does to every task at its end)
    [drain] = [t for t in asyncio.all_tasks() if t.get_name() == "test-flush"]
    drain.cancel()

    # Then the cancellation goes on, and no caller is left waiting forever
    await asyncio.wait_for(asyncio.gather(first, queued, return_exceptions=True), PROMPT)
    assert drain.cancelled() and first.cancelled() and queued.cancelled()


async def test_a_cancelled_caller_leaves_the_rest_of_its_batch_alone() -> None:
    gate = Gate()
    batcher: Batcher[int, str] = Batcher(gate)
    first = asyncio.create_task(batcher.submit(0))
    await asyncio.wait_for(gate.entered.wait(), PROMPT)
    quitter, stayer = (asyncio.create_task(batcher.submit(i)) for i in (1, 2))
    await asyncio.sleep(0)

    quitter.cancel()
    gate.open.set()

    assert await asyncio.wait_for(stayer, PROMPT) == "r2"
    assert await asyncio.wait_for(first, PROMPT) == "r0"
    assert quitter.cancelled()


async def test_close_waits_for_what_is_queued() -> None:
    gate = Gate()
    batcher: Batcher[int, str] = Batcher(gate)
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await asyncio.wait_for(gate.entered.wait(), PROMPT)

    closing = asyncio.create_task(batcher.close())
    await asyncio.sleep(0)
    assert not closing.done()  # the flush is still in flight
    gate.open.set()
    await asyncio.wait_for(closing, PROMPT)

    assert all(c.done() for c in calls)
    assert [c.result() for c in calls] == ["r0", "r1", "r2"]


def test_a_new_event_loop_starts_afresh() -> None:
    # Given a batcher whose first loop ended while a call was still queued
    async def flush(items: list[int]) -> list[int]:
        return [i + 1 for i in items]

    batcher: Batcher[int, int] = Batcher(flush)
    assert asyncio.run(batcher.submit(1)) == 2

    async def abandon() -> None:
        queued = asyncio.ensure_future(batcher.submit(5))
        await asyncio.sleep(0)  # queued and its flush task made; the loop ends with both
        assert not queued.done()

    asyncio.run(abandon())

    # Then a later asyncio.run() uses it as new, on its own loop
    async def again() -> int:
        await batcher.close()  # nothing of this loop is queued: returns at once
        return await batcher.submit(41)

    assert asyncio.run(again()) == 42
