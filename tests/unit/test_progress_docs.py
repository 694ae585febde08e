"""docs/tasks.md's "Reporting progress" and "A job's attempts" run as written.

Their ``python`` blocks run in order in one namespace; the app the first block makes is
pointed at a memory store in eager mode, so the enqueue in the second runs the job at once
and what the blocks print is what the page's comments say.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from conveyor import Conveyor
from conveyor.testing import use_memory_backend

PAGE = Path(__file__).resolve().parents[2] / "docs" / "tasks.md"
SECTIONS = ("## Reporting progress", "## A job's attempts")


def blocks(page: str, heading: str) -> list[str]:
    """The ``python`` blocks of the section under ``heading``."""
    start = page.index(f"\n{heading}\n")
    end = page.find("\n## ", start + 1)
    section = page[start : end if end != -1 else None]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_progress_and_attempts_examples_print_what_the_page_says() -> None:
    page = PAGE.read_text()
    [define, read] = blocks(page, SECTIONS[0])
    [attempts] = blocks(page, SECTIONS[1])
    namespace: dict[str, object] = {"__name__": "docs_tasks"}
    exec(compile(define, "tasks.md: tasks", "exec"), namespace)
    app = namespace["app"]
    assert isinstance(app, Conveyor)

    out = io.StringIO()
    with use_memory_backend(app), contextlib.redirect_stdout(out):
        app.eager = True
        exec(compile(read, "tasks.md: reading progress", "exec"), namespace)
        exec(compile(attempts, "tasks.md: attempts", "exec"), namespace)

    lines = out.getvalue().splitlines()
    assert lines[0] == "3/3 (100%) row 3: c"
    assert lines[1] == "3.0 3.0 1.0 row 3: c"
    attempt, at = lines[2].split()
    assert attempt == "1" and float(at) > 0
    number, outcome, worker, *_ = lines[3].split()
    assert (number, outcome) == ("1", "succeeded") and worker.startswith("eager-")
    assert len(lines) == 4
