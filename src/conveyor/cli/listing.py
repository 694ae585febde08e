"""Job listings for ``conveyor jobs list`` and ``conveyor failed list``, streamed by pages.

A listing never holds more than one page of jobs: it asks the backend for `PAGE_SIZE` jobs
at a time (newest first, by offset) and prints each page before asking for the next, as a
table, one JSON array written element by element, or JSON lines.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from conveyor.cli.common import clip, out
from conveyor.job import JobQuery, JobRecord
from conveyor.timefmt import fmt_time

if TYPE_CHECKING:
    from conveyor.backends.base import Backend

#: Most jobs asked of the backend at once, so memory stays flat however long the listing.
PAGE_SIZE = 500

#: How a row shows a job whose stored record cannot be read (see `JobRecord.unreadable`).
UNREADABLE_MARK = "<unreadable>"

JsonLinesOption = Annotated[
    bool, typer.Option("--jsonl", help="Print one JSON object per line (JSON lines), for scripts.")
]

# Column widths used once a listing spans several pages, so the pages line up.
_WIDTHS = {"id": 26, "task": 32, "queue": 16, "priority": 8, "state": 9, "attempts": 8}


async def pages(
    backend: Backend, query: JobQuery, limit: int, page_size: int = PAGE_SIZE
) -> AsyncIterator[list[JobRecord]]:
    """The first ``limit`` jobs matching ``query``, newest first, ``page_size`` at a time.

    Reads through the store's `Admin` capability.
    """
    offset, left = query.offset, limit
    while left > 0:
        size = min(page_size, left)
        page = await backend.admin.query(replace(query, limit=size, offset=offset))
        if page:
            yield page
        if len(page) < size:
            return
        offset += len(page)
        left -= len(page)


def task_cell(job: JobRecord) -> str:
    """The task name, marked when the stored record cannot be read."""
    if job.unreadable is None:
        return job.task
    return UNREADABLE_MARK if job.task == UNREADABLE_MARK else f"{UNREADABLE_MARK} {job.task}"


def job_table(
    jobs: list[JobRecord],
    *,
    title: str | None,
    error_column: bool = False,
    show_header: bool = True,
    fixed: bool = False,
) -> Table:
    """A table of jobs, one per row (``fixed``: set widths, for a listing of several pages).

    A ``progress`` column is added when any job has progress reported by its current
    attempt (`JobRecord.current_progress`); stored text is never read as rich markup.
    """
    table = Table(title=title, title_justify="left", show_header=show_header)
    for name in ("id", "task", "queue", "priority", "state", "attempts"):
        width = _WIDTHS[name] if fixed else None
        table.add_column(name, no_wrap=name == "id", width=width, overflow="fold")
    progress = [j.current_progress() for j in jobs]
    with_progress = any(p is not None for p in progress)
    if with_progress:
        table.add_column("progress", overflow="fold")
    table.add_column("failed at" if error_column else "updated", width=29 if fixed else None)
    if error_column:
        table.add_column("error", overflow="fold")
    for j, p in zip(jobs, progress, strict=True):
        row = [j.id, task_cell(j), j.queue, j.priority.label, j.state.value, str(j.attempts)]
        if with_progress:
            row.append("" if p is None else p.describe())
        if error_column:
            error = j.last_error if j.unreadable is None else j.unreadable
            row += [fmt_time(j.failed_at or j.updated_at), clip(error)]
        else:
            row.append(fmt_time(j.updated_at))
        table.add_row(*(Text(cell) for cell in row))
    return table


class Printer:
    """Writes pages of jobs as they come: ``table``, ``json`` (one array) or ``jsonl``."""

    def __init__(self, mode: str, noun: str, *, error_column: bool = False) -> None:
        self.mode = mode
        self.noun = noun
        self.error_column = error_column
        self.count = 0
        self.pages = 0
        self.written = 0  # JSON array elements so far: all but the first follow a comma

    def start(self) -> None:
        if self.mode == "json":
            sys.stdout.write("[")

    def page(self, jobs: list[JobRecord], *, last: bool) -> None:
        if self.mode == "table":
            self._table(jobs, last=last)
        else:
            for job in jobs:
                self._json(job.to_dict())
            sys.stdout.flush()
        self.count += len(jobs)
        self.pages += 1

    def finish(self) -> None:
        if self.mode == "json":
            sys.stdout.write("\n]\n" if self.count else "]\n")
            sys.stdout.flush()
        elif self.mode == "table" and self.pages != 1:
            # One page: its title has the count. Several (or none): say it at the end.
            out.print(f"{self.count} {self.noun}(s)", highlight=False)

    def _table(self, jobs: list[JobRecord], *, last: bool) -> None:
        only = last and self.pages == 0
        title = f"{len(jobs)} {self.noun}(s)" if only else None
        out.print(
            job_table(
                jobs,
                title=title,
                error_column=self.error_column,
                show_header=self.pages == 0,
                fixed=not only,
            )
        )

    def _json(self, data: dict[str, Any]) -> None:
        if self.mode == "jsonl":
            sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False) + "\n")
            return
        text = json.dumps(data, indent=2, default=str, ensure_ascii=False)
        sys.stdout.write(("\n" if not self.written else ",\n") + textwrap.indent(text, "  "))
        self.written += 1


async def stream(backend: Backend, query: JobQuery, limit: int, printer: Printer) -> int:
    """Print the first ``limit`` jobs of ``query`` page by page; how many were printed."""
    printer.start()
    pending: list[JobRecord] | None = None
    async for page in pages(backend, query, limit):
        # Hold one page back, so the printer knows which page is the last one.
        if pending is not None:
            printer.page(pending, last=False)
        pending = page
    if pending is not None:
        printer.page(pending, last=True)
    printer.finish()
    return printer.count


def output_mode(as_json: bool, as_jsonl: bool) -> str:
    """``table``, ``json`` or ``jsonl`` from the two flags (``--jsonl`` wins)."""
    return "jsonl" if as_jsonl else "json" if as_json else "table"
