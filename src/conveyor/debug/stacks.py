"""Every thread's stack and every asyncio task's await chain, read from another thread.

It is read from the HTTP server's thread, never on the event loop: a loop stuck in a
blocking call (the case worth looking at) still gets its dump, and the dump shows where it
is stuck (the main thread's stack). An asyncio task's stack is its chain of awaits
(``cr_await``), outermost first, down to the future it waits on; `asyncio.Task.get_stack`
would show only the outermost frame of a suspended task.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any

#: Await chains deeper than this are cut (a recursion of awaits).
MAX_DEPTH = 200


@dataclass(frozen=True, slots=True)
class Frame:
    """One line of a stack."""

    file: str
    line: int
    function: str
    code: str


@dataclass(frozen=True, slots=True)
class ThreadStack:
    """A thread and where it is now, outermost frame first."""

    name: str
    ident: int
    daemon: bool
    frames: tuple[Frame, ...]


@dataclass(frozen=True, slots=True)
class TaskStack:
    """An asyncio task and its chain of awaits, outermost first; ``waiting_on`` is what
    the innermost one waits for (a future, a sleep), when it is not running."""

    name: str
    coroutine: str
    frames: tuple[Frame, ...]
    waiting_on: str | None


@dataclass(frozen=True, slots=True)
class Stacks:
    """One dump: the process, its threads and its event loop's tasks."""

    pid: int
    taken_at: float
    threads: tuple[ThreadStack, ...]
    tasks: tuple[TaskStack, ...]
    #: Why tasks are missing (no event loop known), else ``None``.
    tasks_note: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The dump as JSON-ready data."""
        return asdict(self)

    def to_text(self) -> str:
        """The dump as text, like a Python traceback per task and per thread."""
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.taken_at))
        out = [
            f"process {self.pid} at {when}: {len(self.tasks)} asyncio task(s), "
            f"{len(self.threads)} thread(s)",
        ]
        if self.tasks_note:
            out.append(f"(no asyncio tasks: {self.tasks_note})")
        for task in self.tasks:
            out += ["", f"--- asyncio task {task.name!r} ({task.coroutine}) ---"]
            out += _lines(task.frames)
            if task.waiting_on:
                out.append(f"  waiting on {task.waiting_on}")
        for thread in self.threads:
            daemon = ", daemon" if thread.daemon else ""
            out += ["", f"--- thread {thread.name!r} (ident {thread.ident}{daemon}) ---"]
            out += _lines(thread.frames)
        return "\n".join(out) + "\n"


def _lines(frames: tuple[Frame, ...]) -> list[str]:
    out: list[str] = []
    for f in frames:
        out.append(f'  File "{f.file}", line {f.line}, in {f.function}')
        if f.code:
            out.append(f"    {f.code}")
    return out


def take(loop: asyncio.AbstractEventLoop | None) -> Stacks:
    """Dump every thread and, when ``loop`` is given, every unfinished task of it."""
    current = sys._current_frames()
    threads = []
    for thread in threading.enumerate():
        frame = current.get(thread.ident) if thread.ident is not None else None
        if frame is None:
            continue
        threads.append(
            ThreadStack(thread.name, thread.ident or 0, thread.daemon, _frames_of_thread(frame))
        )
    tasks: list[TaskStack] = []
    note = None
    if loop is None:
        note = "this process runs no event loop the server knows of"
    elif loop.is_closed():
        note = "the event loop is closed"
    else:
        # all_tasks retries while the loop changes its task set under us (another thread).
        for task in sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name()):
            tasks.append(_task_stack(task))
    return Stacks(os.getpid(), time.time(), tuple(threads), tuple(tasks), note)


def _frames_of_thread(frame: FrameType) -> tuple[Frame, ...]:
    return tuple(_frame(s) for s in traceback.extract_stack(frame))


def _frame(s: traceback.FrameSummary) -> Frame:
    return Frame(s.filename, s.lineno or 0, s.name, (s.line or "").strip())


def _task_stack(task: asyncio.Task[Any]) -> TaskStack:
    coro: Any = task.get_coro()
    name = getattr(coro, "__qualname__", type(coro).__name__)
    frames: list[FrameType] = []
    waiting: Any = None
    node: Any = coro
    for _ in range(MAX_DEPTH):
        frame = getattr(node, "cr_frame", None) or getattr(node, "gi_frame", None)
        if frame is None:
            waiting = node if node is not coro else None
            break
        frames.append(frame)
        inner = getattr(node, "cr_await", None)
        if inner is None:
            inner = getattr(node, "gi_yieldfrom", None)
        if inner is None:
            break
        node = inner
    if waiting is not None:
        # `await future` leaves an iterator over the future in cr_await; the task itself
        # knows the future it waits on (a private field, read if present).
        waiting = getattr(task, "_fut_waiter", None) or waiting
    summary = traceback.StackSummary.extract(((f, f.f_lineno) for f in frames), lookup_lines=True)
    return TaskStack(
        task.get_name(),
        name,
        tuple(_frame(s) for s in summary),
        None if waiting is None else _short(waiting),
    )


def _short(obj: object) -> str:
    text = repr(obj)
    return text if len(text) <= 200 else text[:197] + "..."
