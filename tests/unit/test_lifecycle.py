"""SignalTrap: the one way the worker, the scheduler and the supervisor take stop signals."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from conveyor.lifecycle import SignalTrap


async def test_a_trapped_signal_reaches_the_loop_even_while_it_is_blocked() -> None:
    loop = asyncio.get_running_loop()
    seen: list[signal.Signals] = []
    before = signal.getsignal(signal.SIGTERM)
    trap = SignalTrap(seen.append, loop=loop)
    try:
        # When SIGTERM arrives while the loop is blocked in a plain sleep
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        # Then the handler has recorded it at once (the loop has not turned yet),
        assert trap.count == 1 and seen == []
        # and the callback runs on the loop's next turn.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert seen == [signal.SIGTERM]
    finally:
        trap.remove()
    # The handler that was there before is back.
    assert signal.getsignal(signal.SIGTERM) is before


def test_without_a_loop_the_callback_runs_in_the_handler() -> None:
    seen: list[signal.Signals] = []
    trap = SignalTrap(seen.append, (signal.SIGUSR1,))
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.05)
        assert seen == [signal.SIGUSR1] and len(trap.times) == 1
    finally:
        trap.remove()
