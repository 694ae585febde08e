"""Group commit: writes that queue up behind one in flight share the next transaction.

On SQLite each commit costs an fsync (``synchronous=FULL``), and one file takes one writer at
a time, so a worker acking 32 jobs one transaction at a time spends nearly all its time
waiting on the disk. Here a write never waits for company: the first one is handed to the
backend's thread at once. Writes that arrive while that thread is busy (with a commit or
any other call) pile up and are committed together, in arrival order, in one
``BEGIN IMMEDIATE`` transaction, each caller getting its own result.

Each write keeps its own meaning: it is still one operation with its own lease check (a
stale token is fenced exactly as alone), and sharing a transaction only makes it commit
together with its neighbours, never partly. When a shared transaction fails, nothing of it
was kept: the writes are run again one transaction each, so an error that belongs to one
of them (a value that cannot be stored) reaches that caller only. A locked or unusable file
fails the whole group at once instead, since trying each write alone would only wait again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from conveyor.backends.sqlite.store import Store
from conveyor.errors import BackendError, BackendUnavailable

#: A write: one Store call, run inside whatever transaction is open on its connection.
Write = Callable[[Store], Any]
_Waiting = tuple[Write, "asyncio.Future[Any]"]


class GroupCommit:
    """Runs writes on ``executor`` (one thread), sharing a transaction when they queue up."""

    def __init__(self, executor: Executor, store: Callable[[], Store]) -> None:
        self._executor = executor
        self._store = store
        self._lock = threading.Lock()
        self._waiting: list[_Waiting] = []

    def submit(self, write: Write) -> asyncio.Future[Any]:
        """Queue ``write``; the future resolves with its result once its transaction commits.

        Call on an event loop. The write commits even if the caller stops waiting.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._waiting.append((write, future))
            first = len(self._waiting) == 1
        if first:
            # Whatever queues up before this flush starts on the thread joins it.
            try:
                self._executor.submit(self._flush)
            except RuntimeError as exc:  # the thread was shut down: nothing queued can run
                with self._lock:
                    stranded, self._waiting = self._waiting, []
                error = BackendError(f"the SQLite backend was closed ({exc}); open a new one")
                for _, waiter in stranded:
                    waiter.get_loop().call_soon_threadsafe(_deliver, [(waiter, error)])
        return future

    def _flush(self) -> None:
        """On the executor's thread: commit every waiting write, then hand out results."""
        with self._lock:
            group, self._waiting = self._waiting, []
        if not group:
            return
        outcomes: list[Any]
        try:
            outcomes = _commit(self._store(), [write for write, _ in group])
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear of it
            outcomes = [exc] * len(group)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for (_, future), outcome in zip(group, outcomes, strict=True):
            by_loop.setdefault(future.get_loop(), []).append((future, outcome))
        for loop, results in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits there
                loop.call_soon_threadsafe(_deliver, results)


def _commit(store: Store, writes: list[Write]) -> list[Any]:
    """Each write's result, or the exception it raised; one transaction when possible."""
    if len(writes) > 1:
        try:
            return store.together([functools.partial(write, store) for write in writes])
        except BackendUnavailable as exc:
            return [exc] * len(writes)
        except Exception:  # noqa: BLE001, S110 - rolled back: find whose error it is below
            pass
    outcomes: list[Any] = []
    for write in writes:
        try:
            outcomes.append(write(store))
        except Exception as exc:  # noqa: BLE001 - delivered to that write's caller
            outcomes.append(exc)
    return outcomes


def _deliver(results: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, outcome in results:
        if future.done():
            continue  # the caller was cancelled; its write committed all the same
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
