"""A failed job's traceback as its reader wants it: from the task's own frames first.

A task's exception passes up through Conveyor's executor and middleware chain before the
worker records it, so its full traceback opens with frames the task's author never wrote.
`task_view` hides them, as pytest hides its own, and keeps the whole traceback after a
`MARKER` line in the same text (stores keep one traceback field); `split` takes the two
apart again for the dashboard's job page (the whole one behind a click) and
`conveyor jobs show` (``--full-traceback``).

Hidden: the frames that carry a job to its task (Conveyor's, and the standard library's
asyncio and thread pool before the task's first frame), and Conveyor's frames between the
task's (its middleware's). Kept: everything from the task's first frame on, Conveyor's
frames after the last frame of other code (where an error raised inside Conveyor on the
task's behalf, say an ``enqueue`` with bad arguments, comes from), and every frame when no
code of the task's is on the stack (an error inside Conveyor itself).
"""

from __future__ import annotations

import os
import sysconfig
import traceback
from functools import lru_cache

#: Between the task's view and the whole traceback, in a stored traceback.
MARKER = "\n-- the whole traceback, with Conveyor's own frames --\n"

_PACKAGE = os.path.realpath(os.path.dirname(__file__)) + os.sep
_STDLIB = os.path.realpath(sysconfig.get_paths()["stdlib"]) + os.sep


@lru_cache(maxsize=1024)
def _ours(filename: str) -> bool:
    """Whether ``filename`` is one of Conveyor's own modules."""
    try:
        return os.path.realpath(filename).startswith(_PACKAGE)
    except (OSError, ValueError):
        return False


@lru_cache(maxsize=1024)
def _plumbing(filename: str) -> bool:
    """Whether ``filename`` is Conveyor's or the standard library's (asyncio, the thread
    pool a plain ``def`` task runs in): what carries a job to its task."""
    if _ours(filename):
        return True
    try:
        path = os.path.realpath(filename)
    except (OSError, ValueError):
        return False
    installed = "site-packages" in path or "dist-packages" in path
    return path.startswith(_STDLIB) and not installed


def _hide(te: traceback.TracebackException | None, seen: set[int]) -> int:
    """Drop Conveyor's frames before the last frame of other code, in ``te`` and in the
    exceptions chained to it; how many were dropped."""
    if te is None or id(te) in seen:
        return 0
    seen.add(id(te))
    frames = list(te.stack)
    first = next((i for i, f in enumerate(frames) if not _plumbing(f.filename)), None)
    hidden = 0
    if first is not None:
        last = max(i for i, f in enumerate(frames) if not _ours(f.filename))
        kept = [
            f for i, f in enumerate(frames) if i >= first and (i >= last or not _ours(f.filename))
        ]
        hidden = len(frames) - len(kept)
        if hidden:
            te.stack = traceback.StackSummary.from_list(kept)
    hidden += _hide(te.__cause__, seen) + _hide(te.__context__, seen)
    for inner in getattr(te, "exceptions", None) or ():
        hidden += _hide(inner, seen)
    return hidden


def task_view(exc: BaseException) -> str:
    """``exc``'s traceback from the task's own frames, then `MARKER` and the whole one; just
    the whole one when none of Conveyor's frames could be hidden."""
    whole = "".join(traceback.format_exception(exc))
    te = traceback.TracebackException.from_exception(exc)
    hidden = _hide(te, set())
    if not hidden:
        return whole
    short = "".join(te.format()).rstrip("\n")
    note = f"\n({hidden} frames of Conveyor's and the event loop's hidden above the task's)\n"
    return short + note + MARKER + whole


def split(text: str) -> tuple[str, str | None]:
    """A stored traceback as (the task's view, the whole one or ``None`` when there is no
    other)."""
    short, sep, whole = text.partition(MARKER)
    return (short, whole) if sep else (text, None)
