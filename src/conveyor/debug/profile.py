"""A sampling CPU profile of every thread of the running process, rendered by pyinstrument.

pyinstrument's own profiler samples only the thread that starts it, and a worker spends
its CPU in several: the event loop (async tasks, the store client) and the threads that
run plain ``def`` tasks. So `record` samples every thread's stack (`sys._current_frames`)
every `INTERVAL` seconds from the calling thread, and weighs each sample by the CPU time
that thread used since the previous one (Linux: per-thread CPU clocks): a thread blocked
on I/O or waiting for a job adds nothing. Where per-thread CPU clocks are missing, each
sample weighs the interval (wall-clock time: idle threads show up, in their waits).

The samples become a pyinstrument `Session` (the format of its saved sessions, with one
root per thread), which pyinstrument renders as HTML or as speedscope JSON.
Needs ``pip install 'conveyor[profiling]'``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING

from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyinstrument.session import Session

#: Seconds between samples.
INTERVAL = 0.005
#: The longest profile one request may ask for, in seconds.
MAX_SECONDS = 60.0
FORMATS: dict[str, str] = {
    "html": "text/html; charset=utf-8",
    "speedscope": "application/json",
}


def check_seconds(value: str | None) -> float:
    """The ``seconds`` of a request (default 10), or `ValueError` saying what to give."""
    if value is None:
        return 10.0
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"seconds={value!r} is not a number; give e.g. seconds=10") from None
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"seconds={value} is out of range; give more than 0, at most 60")
    return seconds


def _renderers() -> tuple[Callable[[Session], str], Callable[[Session], str]]:
    try:
        from pyinstrument.renderers import HTMLRenderer, SpeedscopeRenderer
    except ImportError:
        raise ConfigError(
            "profiling needs pyinstrument: pip install 'conveyor[profiling]' where the worker runs"
        ) from None
    return HTMLRenderer().render, SpeedscopeRenderer().render


def available() -> str | None:
    """Why profiling cannot run here (pyinstrument missing), or ``None``."""
    try:
        _renderers()
    except ConfigError as exc:
        return str(exc)
    return None


def render(session: Session, fmt: str) -> bytes:
    """``session`` as pyinstrument's HTML page or as speedscope JSON."""
    html, speedscope = _renderers()
    return (html if fmt == "html" else speedscope)(session).encode()


def record(seconds: float, *, interval: float = INTERVAL) -> Session:
    """Sample every other thread for ``seconds`` (blocks the calling thread meanwhile)."""
    from pyinstrument.session import Session

    frame_info = _frame_info()
    me = threading.get_ident()
    records: list[tuple[list[str], float]] = []
    last_cpu: dict[int, float] = {}
    started, cpu_started = time.time(), time.process_time()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        names = {t.ident: t.name for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            if ident == me:
                continue
            weight = _weight(ident, last_cpu, interval)
            if weight > 0:
                stack = _call_stack(frame, names.get(ident, "?"), ident, frame_info)
                records.append((stack, weight))
        time.sleep(interval)
    return Session(
        frame_records=records,
        start_time=started,
        duration=time.time() - started,
        min_interval=interval,
        max_interval=interval,
        sample_count=len(records),
        start_call_stack=[_root()],
        target_description=f"process {os.getpid()}, every thread, {seconds:g}s",
        cpu_time=time.process_time() - cpu_started,
        sys_path=sys.path,
        sys_prefixes=Session.current_sys_prefixes(),
    )


def _weight(ident: int, last_cpu: dict[int, float], interval: float) -> float:
    """CPU seconds the thread used since its last sample (0 on its first); ``interval``
    where per-thread CPU clocks are missing."""
    try:
        now = time.clock_gettime(time.pthread_getcpuclockid(ident))
    except (AttributeError, OSError):  # not Linux, or the thread just ended
        return interval
    before = last_cpu.get(ident)
    last_cpu[ident] = now
    return 0.0 if before is None else max(0.0, now - before)


def _root() -> str:
    # The root pyinstrument puts above every stack: it trims the tree down to the first
    # branch under it, here the threads.
    from pyinstrument.frame import DUMMY_ROOT_FRAME_IDENTIFIER

    return DUMMY_ROOT_FRAME_IDENTIFIER


def _frame_info() -> Callable[[FrameType], str]:
    """pyinstrument's own frame identifier (function, file, line, class), as its profiler
    records it; the bare three fields of its saved-session format otherwise."""
    try:
        from pyinstrument.low_level.stat_profile import get_frame_info
    except ImportError:  # pragma: no cover - a pyinstrument that moved it

        def get_frame_info(frame: FrameType) -> str:
            code = frame.f_code
            return f"{code.co_qualname}\x00{code.co_filename}\x00{code.co_firstlineno}"

    return get_frame_info


def _call_stack(
    frame: FrameType | None, thread: str, ident: int, frame_info: Callable[[FrameType], str]
) -> list[str]:
    stack: list[str] = []
    while frame is not None:
        stack.append(frame_info(frame))
        frame = frame.f_back
    stack.append(f"{thread}\x00<thread>\x00{ident}")  # one root per thread, as pyinstrument
    stack.reverse()
    return stack
