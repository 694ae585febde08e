"""Job deadlines on one shared timer behave as asyncio.timeout does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from conveyor.worker.deadlines import Deadline, _watches, deadline

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        loop = LOOPS[request.param]()
        try:
            # Bounded: a deadline that never fires fails the test instead of hanging it.
            return loop.run_until_complete(asyncio.wait_for(coro, 10))
        finally:
            loop.close()

    return runner


async def _block(seconds: float, work: float) -> str:
    async with deadline(seconds):
        await asyncio.sleep(work)
    return "done"


async def _outcome(seconds: float, work: float) -> str:
    try:
        return await _block(seconds, work)
    except TimeoutError:
        return "timeout"


def test_a_block_past_its_deadline_raises_timeout_error(run: Any) -> None:
    async def main() -> None:
        with pytest.raises(TimeoutError) as caught:
            await _block(0.05, 30)
        assert isinstance(caught.value.__cause__, asyncio.CancelledError)

    run(main())


def test_a_block_within_its_deadline_ends_normally_and_its_task_goes_on(run: Any) -> None:
    async def main() -> None:
        assert await _block(5, 0.01) == "done"
        await asyncio.sleep(0.01)  # no cancel left pending on the task
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]

    run(main())


def test_blocks_share_the_timer_and_each_times_out_at_its_own_deadline(run: Any) -> None:
    async def main() -> None:
        # A long deadline first, then shorter ones: the timer is brought forward.
        slow = asyncio.ensure_future(_outcome(5, 0.3))
        await asyncio.sleep(0)
        quick = [asyncio.ensure_future(_outcome(0.05, 30)) for _ in range(3)]
        ended = asyncio.ensure_future(_outcome(0.01, 0))  # leaves a stale deadline
        late = asyncio.ensure_future(_outcome(0.2, 30))
        assert await asyncio.gather(slow, *quick, ended, late) == [
            "done",
            "timeout",
            "timeout",
            "timeout",
            "done",
            "timeout",
        ]

    run(main())


def test_a_cancel_from_outside_stays_a_cancel(run: Any) -> None:
    async def main() -> None:
        task = asyncio.ensure_future(_block(5, 30))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())


def test_a_cancel_from_outside_as_the_deadline_passes_stays_a_cancel(run: Any) -> None:
    async def main() -> None:
        blocks: list[Deadline] = []

        async def body() -> None:
            async with deadline(30) as block:
                blocks.append(block)
                await asyncio.sleep(30)

        task = asyncio.ensure_future(body())
        while not blocks:
            await asyncio.sleep(0)
        blocks[0].expire()  # the deadline passes (as the timer would)...
        task.cancel()  # ...and someone else cancels the job in the same step
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())


def test_no_timer_is_kept_while_no_block_runs(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert await _block(30, 0) == "done"
        watch = _watches[loop]
        assert (watch.timer, watch.active) == (None, {})  # the loop can be collected

    run(main())


def test_a_deadline_outside_a_task_is_refused() -> None:
    loop = asyncio.new_event_loop()
    errors: list[str] = []

    def callback() -> None:  # on the loop, but in no task
        try:
            deadline(1).__aenter__().send(None)
        except RuntimeError as exc:
            errors.append(str(exc))
        loop.stop()

    try:
        loop.call_soon(callback)
        loop.run_forever()
    finally:
        loop.close()
    assert errors == ["deadline() must be used inside a task"]
