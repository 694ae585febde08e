"""``conveyor jobs show | list | cancel | delete`` (``conveyor enqueue`` is in `enqueue`)."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from conveyor.backends.capabilities import Admin
from conveyor.cli.common import (
    EXIT_NOTHING,
    AppOption,
    JsonOption,
    UrlOption,
    err,
    fail,
    handle_errors,
    out,
    print_json,
    run_with_backend,
    split_list,
)
from conveyor.cli.listing import JsonLinesOption, Printer, output_mode, stream
from conveyor.cli.loading import resolve_app
from conveyor.cli.story import print_story
from conveyor.cli.typer_app import Cli
from conveyor.errors import ConfigError, JobNotFound, SerializationError
from conveyor.handle import missing_job
from conveyor.job import FINAL_STATES, JobQuery, JobRecord, State
from conveyor.timefmt import fmt_time
from conveyor.tracebacks import split as split_traceback

if TYPE_CHECKING:
    from conveyor.backends.base import Backend

jobs_app = Cli(help="Look at, cancel and delete single jobs.", no_args_is_help=True)

_TIMES = ("run_at", "created_at", "updated_at", "started_at", "finished_at", "failed_at")
#: Shown apart from the field table: long text, the record as stored, the job's story.
_APART = ("traceback", "payload", "raw", "unreadable", "attempt_history", "progress")


def job_details(job: JobRecord) -> dict[str, Any]:
    """Every field of a job, with its arguments and result decoded where possible.

    An unreadable record (``job.unreadable`` set) keeps ``args``/``kwargs`` as ``None``:
    its ``raw`` fields are what there is to see.
    """
    from conveyor.serialization import decode_payload_json, decode_value_json

    data = job.to_dict()
    data["args"] = data["kwargs"] = None
    if job.unreadable is not None:
        return data
    try:
        data["args"], data["kwargs"] = decode_payload_json(job.payload)
    except SerializationError as exc:
        data["payload_error"] = str(exc)
    if job.result is not None:
        with contextlib.suppress(ValueError):  # keep the raw text
            data["result"] = decode_value_json(job.result)
    return data


def _field_text(key: str, value: Any) -> str:
    if key in _TIMES:
        try:
            return fmt_time(value)
        except (OverflowError, ValueError, OSError):  # a time no calendar can show
            return repr(value)
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else str(value)


@jobs_app.command("show")
@handle_errors
def show(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job's id.")],
    app_spec: AppOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
    full_traceback: Annotated[
        bool,
        typer.Option(
            "--full-traceback", help="The whole traceback, with Conveyor's own frames too."
        ),
    ] = False,
) -> None:
    """Show every field of one job, its progress, attempts, error and traceback. Exit 1 if
    not found.

    The attempts table has each attempt's outcome, worker, start, duration and error (its
    first line, cut). The traceback starts at the task's own frames; ``--full-traceback``
    prints the whole one, and each earlier attempt's traceback the store kept. A record
    the store cannot read is shown as what is wrong with it and its raw fields. ``--json``
    has every field, ``attempt_history`` and ``progress`` included.
    """
    app = resolve_app(app_spec, url)

    async def read(backend: Backend) -> tuple[Backend, JobRecord | None]:
        return backend, await backend.get(job_id)

    store, job = run_with_backend(app, read)
    if job is None:
        raise missing_job(store, job_id)
    data = job_details(job)
    if as_json:
        print_json(data)
        return
    if job.unreadable is not None:
        out.print("[bold red]unreadable record[/] (fields below are best-effort stand-ins)")
        out.print(job.unreadable, markup=False, highlight=False)
        out.print()
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in data.items():
        if key in _APART or value is None:
            continue
        table.add_row(key, Text(_field_text(key, value)))  # task text: never rich markup
    out.print(table)
    print_story(out, job, full_traceback=full_traceback)
    if job.traceback:
        short, whole = split_traceback(job.traceback)
        out.print("\n[bold]traceback[/]")
        shown = whole if full_traceback and whole is not None else short
        out.print(shown.rstrip(), markup=False, highlight=False)
        if whole is not None and not full_traceback:
            out.print("[dim](--full-traceback shows Conveyor's own frames too)[/]")
    if job.raw is not None:
        out.print("\n[bold]raw stored fields[/]")
        raw = Table(show_header=False, box=None, pad_edge=False)
        raw.add_column(style="bold")
        raw.add_column(overflow="fold")
        for key, value in job.raw.items():
            raw.add_row(Text(key), Text(value))  # stored bytes: never read as rich markup
        out.print(raw)


def parse_states(value: str | None) -> tuple[State, ...] | None:
    """``"dead,ready"`` → states; an unknown name is a `ConfigError`."""
    names = split_list(value)
    if names is None:
        return None
    try:
        return tuple(State(n.lower()) for n in names)
    except ValueError:
        known = ", ".join(s.value for s in State)
        raise ConfigError(f"--state {value!r} has an unknown state; use {known}") from None


@jobs_app.command("list")
@handle_errors
def list_jobs(
    app_spec: AppOption = None,
    url: UrlOption = None,
    state: Annotated[
        str | None, typer.Option(help="Comma-separated states, e.g. ready,running.")
    ] = None,
    queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None,
    task: Annotated[str | None, typer.Option(help="Only this task name.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    as_json: JsonOption = False,
    as_jsonl: JsonLinesOption = False,
) -> None:
    """List jobs, newest first (streamed: any --limit runs in little memory)."""
    query = JobQuery(states=parse_states(state), queue=queue, task=task)
    app = resolve_app(app_spec, url)
    printer = Printer(output_mode(as_json, as_jsonl), "job")
    run_with_backend(
        app,
        lambda backend: stream(backend, query, limit, printer),
        needs=[Admin],
        purpose="`conveyor jobs list`",
    )


@jobs_app.command("cancel")
@handle_errors
def cancel(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job's id.")],
    app_spec: AppOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a scheduled, ready or running job. Exit 1 if not found or already finished.

    ``--json``: ``{"id": ..., "cancelled": true|false, "state": ...}`` (the job's state now).
    """
    app = resolve_app(app_spec, url)

    async def act(backend: Backend) -> tuple[bool, JobRecord | None]:
        return await backend.admin.cancel(job_id), await backend.get(job_id)

    done, job = run_with_backend(app, act, needs=[Admin], purpose="`conveyor jobs cancel`")
    if job is None:
        raise JobNotFound(f"job {job_id} does not exist (or was pruned after retention)")
    if as_json:
        print_json({"id": job_id, "cancelled": done, "state": job.state.value})
        if not done:
            raise typer.Exit(EXIT_NOTHING)
        return
    if not done:
        fail(f"job {job_id} is already {job.state.value}; nothing to cancel", EXIT_NOTHING)
    out.print(f"cancelled {job_id}", highlight=False)


@jobs_app.command("delete")
@handle_errors
def delete(
    job_ids: Annotated[
        list[str], typer.Argument(metavar="ID...", help="Finished jobs to delete for good.")
    ],
    app_spec: AppOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete finished jobs (succeeded, dead or cancelled), unreadable ones included.

    Exit 1 if any id is missing or not finished (cancel a waiting or running job first).
    ``--json``: ``{"deleted": [ids], "errors": [one line per id not deleted]}``.
    """
    app = resolve_app(app_spec, url)
    wanted = list(dict.fromkeys(job_ids))

    async def act(backend: Backend) -> tuple[list[str], list[str]]:
        problems: list[str] = []
        final: list[str] = []
        for job_id in wanted:
            problem = _not_deletable(job_id, await backend.get(job_id))
            (problems if problem else final).append(problem or job_id)
        if final:
            await backend.admin.delete(final)
        deleted: list[str] = []
        for job_id in final:  # the store deletes only final jobs: one may have moved on
            left = await backend.get(job_id)
            if left is None:
                deleted.append(job_id)
            else:
                problems.append(
                    _not_deletable(job_id, left) or f"job {job_id} was not deleted; try again"
                )
        return deleted, problems

    deleted, problems = run_with_backend(app, act, needs=[Admin], purpose="`conveyor jobs delete`")
    if as_json:
        print_json({"deleted": deleted, "errors": problems})
        raise typer.Exit(EXIT_NOTHING if problems else 0)
    if deleted:
        out.print(f"deleted {len(deleted)} job(s): {' '.join(deleted)}", highlight=False)
    for problem in problems:
        err.print(f"error: {problem}", markup=False, highlight=False)
    if problems:
        raise typer.Exit(EXIT_NOTHING)


def _not_deletable(job_id: str, job: JobRecord | None) -> str | None:
    """Why ``job`` cannot be deleted, or ``None`` when it can."""
    if job is None:
        return f"job {job_id} does not exist (or was pruned after retention)"
    if job.state not in FINAL_STATES:
        return (
            f"job {job_id} is {job.state.value}, not finished; cancel it first "
            f"(`conveyor jobs cancel {job_id}`), then delete it"
        )
    return None
