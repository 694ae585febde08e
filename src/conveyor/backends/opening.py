"""`SharedOpen`: one open of a store at a time, shared by every caller that arrives while
it runs.

A hundred coroutines enqueueing at start-up must not open a hundred connections (or check
the schema a hundred times): the first starts the open, the others wait for that one. The
app (`Conveyor.open`) and stores made of other stores (a Redis Cluster's shards) open this
way; each remembers for itself that its open succeeded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["SharedOpen"]


class SharedOpen:
    """The open in progress, shared.

    * Callers arriving while an open runs wait for that one and get its outcome.
    * A caller cancelled while waiting does not cancel the open for the others.
    * Once the open has ended (succeeded or failed), the next `run` starts a new one: a
      failed open is tried again, and the owner stops calling after a success.
    * An open running on another event loop (``asyncio.run`` called twice) is not shared:
      a task cannot be awaited from another loop, so this loop starts its own.
    """

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def run(self, open_: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Wait for the open in progress, or start ``open_()``; raise its error."""
        loop = asyncio.get_running_loop()
        task = self._task
        if task is None or task.get_loop() is not loop:
            task = self._task = loop.create_task(open_())
        try:
            await asyncio.shield(task)
        finally:
            if task.done() and self._task is task:
                self._task = None

    def reset(self) -> None:
        """Forget an open in progress (the store was closed meanwhile)."""
        self._task = None
