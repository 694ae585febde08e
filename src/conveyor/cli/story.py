"""A job's story in ``conveyor jobs show``: its progress line and its attempts table.

The attempts come from `JobRecord.attempt_history` (the ones the store logged — failed,
dead, lost — then the one running now or the one that succeeded); the progress from
`JobRecord.current_progress` (only the current attempt's report). Every value a task or a
store wrote is printed as `Text`, never read as rich markup.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from conveyor.attempts import Attempt, JobProgress
from conveyor.cli.common import clip
from conveyor.job import JobRecord
from conveyor.timefmt import fmt_duration, fmt_time
from conveyor.tracebacks import split as split_traceback

#: Characters of an attempt's error the table shows (its first line).
ERROR_WIDTH = 72

_STYLES = {
    "succeeded": "green",
    "running": "cyan",
    "failed": "yellow",
    "dead": "bold red",
    "lost": "magenta",
}


def progress_text(progress: JobProgress) -> Text:
    """``40/100 (40%) resizing · reported 2026-...``: the report and when it was made."""
    text = Text(progress.describe())
    text.append(f" · reported {fmt_time(progress.at)}", style="dim")
    return text


def attempts_table(attempts: list[Attempt]) -> Table:
    """One row per attempt: number, outcome, worker, start, duration and error (cut)."""
    table = Table(title="attempts", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("outcome")
    table.add_column("worker", overflow="fold")
    table.add_column("started")
    table.add_column("duration", justify="right")
    table.add_column("error", overflow="fold")
    for attempt in attempts:
        table.add_row(
            str(attempt.number),
            Text(attempt.outcome, style=_STYLES.get(attempt.outcome, "")),
            Text(attempt.worker_id or "-"),
            fmt_time(attempt.started_at),
            _duration(attempt),
            Text(clip(attempt.error, ERROR_WIDTH)),
        )
    return table


def _duration(attempt: Attempt) -> str:
    seconds = attempt.duration
    if seconds is None:
        return "-"
    return fmt_duration(seconds)


def print_story(console: Console, job: JobRecord, *, full_traceback: bool) -> None:
    """The progress line (if the current attempt reported any) and the attempts table.

    With ``full_traceback`` each logged attempt's traceback (the task's own frames, as the
    store kept it) follows the table.
    """
    progress = job.current_progress()
    if progress is not None:
        line = Text("progress ", style="bold")
        line.append_text(progress_text(progress))
        console.print(line)
    attempts = job.attempt_history()
    if not attempts:
        return
    console.print()
    console.print(attempts_table(attempts))
    if not full_traceback:
        return
    for attempt in attempts:
        if attempt.traceback:
            console.print(Text(f"\nattempt {attempt.number} traceback ({attempt.outcome})", "bold"))
            # The task's own frames: a dead record older than the log has its last failure
            # here as the job stored it, with Conveyor's frames after the marker.
            console.print(Text(split_traceback(attempt.traceback)[0].rstrip()))
