"""Which event loop a worker process runs on: uvloop where it is installed, else asyncio's.

A worker's own work per job is mostly event-loop work (socket writes and reads, task
switches), which uvloop does in C: measured on Redis (docs/benchmarks.md, issue 13) a
worker drained 18-25% more jobs per second on uvloop than on asyncio's default loop, in
three alternated pairs. uvloop comes with the ``redis`` extra on the platforms it supports;
``conveyor worker --loop asyncio`` (or ``WORKER_LOOP=asyncio``, which the workers of
``conveyor run`` read too) keeps the standard loop (to rule the loop out when chasing a
problem, or for a library that needs it).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from conveyor.errors import ConfigError

T = TypeVar("T")

#: ``auto``: uvloop when it can be imported, else asyncio; the other two say which.
LoopName = Literal["auto", "asyncio", "uvloop"]
LOOPS: tuple[LoopName, ...] = ("auto", "asyncio", "uvloop")


def loop_factory(
    name: str, where: str = "--loop"
) -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """The loop that ``name`` picks: its name, and a factory (``None``: asyncio's own).

    Raises `ConfigError` for an unknown name, or for ``uvloop`` when it is not installed,
    naming ``where`` the name came from (``--loop`` or ``WORKER_LOOP``).
    """
    opt_out = "--loop asyncio" if where == "--loop" else f"{where}=asyncio"
    if name not in LOOPS:
        raise ConfigError(f"{where}: unknown event loop {name!r}: use one of {', '.join(LOOPS)}")
    if name == "asyncio":
        return "asyncio", None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if name == "uvloop":
            raise ConfigError(
                f"{where} uvloop: uvloop is not installed; pip install uvloop (it comes "
                f"with conveyor[redis] where it is supported), or use {opt_out}"
            ) from None
        return "asyncio", None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return "uvloop", factory


def run(main: Coroutine[Any, Any, T], name: str = "auto") -> T:
    """Run ``main`` to completion on the loop ``name`` picks, as `asyncio.run` does."""
    _, factory = loop_factory(name)
    if factory is None:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
