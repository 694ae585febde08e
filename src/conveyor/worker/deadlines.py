"""Job timeouts on one timer per event loop.

`deadline` is `asyncio.timeout` for a job's own Task, with the same outcome: the block's
Task is cancelled when its time is up, and the block raises `TimeoutError` (from the
`CancelledError`) unless someone else cancelled the Task too. What differs is the cost:
`asyncio.timeout` schedules a timer for each block and cancels it when the block ends
(about 5 µs per job on uvloop, a twentieth of a short job's worker CPU in a profile).
Here the blocks running on a loop share one timer, set for the earliest deadline among
them (or for one whose block has ended since, which then finds the next); entering and
leaving a block costs a dict entry (about 2 µs in all while other jobs run; a block that
runs alone still sets and drops the timer). A block's timeout fires at its deadline, as
`asyncio.timeout`'s does.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from types import TracebackType


class _Watch:
    """The blocks running on one loop and the one timer that watches their deadlines.

    It holds no reference to its loop (the registry is keyed by the loop, weakly): the
    timer, whose handle does, is dropped whenever no block is running.
    """

    __slots__ = ("active", "timer", "timer_at")

    def __init__(self) -> None:
        self.active: dict[Deadline, None] = {}
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = math.inf

    def enter(self, loop: asyncio.AbstractEventLoop, block: Deadline) -> None:
        """Watch ``block``: make sure the timer fires by its deadline."""
        self.active[block] = None
        if block.when < self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = loop.call_at(block.when, self.fire)
            self.timer_at = block.when

    def leave(self, block: Deadline) -> None:
        """Stop watching ``block``; with nothing left to watch, drop the timer."""
        self.active.pop(block, None)
        if not self.active and self.timer is not None:
            self.timer.cancel()
            self.timer, self.timer_at = None, math.inf

    def fire(self) -> None:
        """Expire every block whose deadline has come; set the timer for the next."""
        self.timer, self.timer_at = None, math.inf
        loop = asyncio.get_running_loop()
        now = loop.time()
        upcoming: Deadline | None = None
        for block in list(self.active):
            if block.when <= now:
                del self.active[block]
                block.expire()
            elif upcoming is None or block.when < upcoming.when:
                upcoming = block
        if upcoming is not None:
            self.enter(loop, upcoming)


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watch] = weakref.WeakKeyDictionary()


class Deadline:
    """``async with deadline(seconds):`` (see the module's docstring)."""

    __slots__ = ("cancelling", "expiring", "seconds", "task", "watch", "when")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.when = math.inf
        self.expiring = False
        self.cancelling = 0
        self.task: asyncio.Task[object] | None = None
        self.watch: _Watch | None = None

    async def __aenter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("deadline() must be used inside a task")
        loop = task.get_loop()
        watch = _watches.get(loop)
        if watch is None:
            watch = _watches[loop] = _Watch()
        self.task, self.watch = task, watch
        self.cancelling = task.cancelling()
        self.when = loop.time() + self.seconds
        watch.enter(loop, self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.watch is not None and self.task is not None
        self.watch.leave(self)
        if self.expiring:
            self.expiring = False
            # As asyncio.timeout: a timeout only when no other cancel is pending.
            if self.task.uncancel() <= self.cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc

    def expire(self) -> None:
        """The deadline has come: cancel the block's Task (its exit raises TimeoutError)."""
        assert self.task is not None
        self.expiring = True
        self.task.cancel()


def deadline(seconds: float) -> Deadline:
    """A block that times out after ``seconds``, like `asyncio.timeout` (the module's
    docstring says how it differs)."""
    return Deadline(seconds)
