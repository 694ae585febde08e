"""What the pieces of `SqliteBackend` (its mixins) use from the backend itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from conveyor.backends.sqlite.store import Store

T = TypeVar("T")


class SqlitePart:
    """Base of `SqliteBackend`'s mixins: the ways it runs a function on its store's thread."""

    async def _run(self, fn: Callable[[Store], T]) -> T:
        raise NotImplementedError  # provided by SqliteBackend

    async def _run_write(self, fn: Callable[[Store], T]) -> T:
        raise NotImplementedError  # provided by SqliteBackend

    def _grouped(self, fn: Callable[[Store], T]) -> asyncio.Future[T]:
        raise NotImplementedError  # provided by SqliteBackend
