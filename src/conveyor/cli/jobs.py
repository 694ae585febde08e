"""``conveyor enqueue`` and ``conveyor jobs show | list | cancel``."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from conveyor.cli.common import (
    EXIT_NOTHING,
    AppOption,
    JsonOption,
    UrlOption,
    clip,
    fail,
    fmt_time,
    handle_errors,
    out,
    print_json,
    resolve_app,
    run_with_backend,
    split_list,
)
from conveyor.errors import ConfigError, JobNotFound, SerializationError
from conveyor.job import JobQuery, JobRecord, State

if TYPE_CHECKING:
    from conveyor.backends.base import Backend

jobs_app = typer.Typer(help="Look at and cancel single jobs.", no_args_is_help=True)

_TIMES = ("run_at", "created_at", "updated_at", "started_at", "finished_at", "failed_at")


def _parse_json(option: str, text: str | None, kind: type) -> Any:
    if text is None:
        return kind()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{option} is not valid JSON ({exc.msg} at character {exc.pos}): {text!r}"
        ) from None
    if not isinstance(value, kind):
        shape = "array, e.g. '[1, \"a\"]'" if kind is list else "object, e.g. '{\"k\": 1}'"
        raise ConfigError(f"{option} must be a JSON {shape}; got {text!r}")
    return value


@handle_errors
def enqueue(
    task: Annotated[str, typer.Argument(help="Registered task name, e.g. myapp.send_email.")],
    app_spec: AppOption = None,
    url: UrlOption = None,
    args: Annotated[
        str | None, typer.Option("--args", help="Positional arguments as a JSON array.")
    ] = None,
    kwargs: Annotated[
        str | None, typer.Option("--kwargs", help="Keyword arguments as a JSON object.")
    ] = None,
    queue: Annotated[str | None, typer.Option(help="Queue (default: the task's).")] = None,
    priority: Annotated[
        str | None, typer.Option(help="high, normal or low (default: the task's).")
    ] = None,
    delay: Annotated[float | None, typer.Option(help="Run no sooner than this many s.")] = None,
    unique_key: Annotated[
        str | None, typer.Option(help="Skip if a queued/running job holds this key.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Enqueue one job for a registered task and print its id."""
    call_args = _parse_json("--args", args, list)
    call_kwargs = _parse_json("--kwargs", kwargs, dict)
    app = resolve_app(app_spec, url, need_app=True)
    bound = app.get_task(task).options(
        queue=queue, priority=priority, delay=delay, unique_key=unique_key
    )
    try:
        handle = bound.enqueue(*call_args, **call_kwargs)
    finally:
        app.close()
    if as_json:
        print_json({"id": handle.id, "existing": handle.existing})
    else:
        out.print(handle.id, highlight=False)


def job_details(job: JobRecord) -> dict[str, Any]:
    """Every field of a job, with its arguments and result decoded where possible."""
    from conveyor.serialization import decode_payload, decode_value

    data = job.to_dict()
    try:
        data["args"], data["kwargs"] = decode_payload(job.payload)
    except SerializationError as exc:
        data["args"] = data["kwargs"] = None
        data["payload_error"] = str(exc)
    if job.result is not None:
        with contextlib.suppress(ValueError):  # keep the raw text
            data["result"] = decode_value(job.result)
    return data


@jobs_app.command("show")
@handle_errors
def show(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job's id.")],
    app_spec: AppOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show every field of one job, with its error and traceback. Exit 1 if not found."""
    app = resolve_app(app_spec, url)

    async def read(backend: Backend) -> JobRecord | None:
        return await backend.get(job_id)

    job = run_with_backend(app, read)
    if job is None:
        raise JobNotFound(f"job {job_id} does not exist (or was pruned after retention)")
    data = job_details(job)
    if as_json:
        print_json(data)
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in data.items():
        if key in ("traceback", "payload") or value is None:
            continue
        text = fmt_time(value) if key in _TIMES else (
            json.dumps(value) if isinstance(value, (list, dict)) else str(value)
        )
        table.add_row(key, text)
    out.print(table)
    if job.traceback:
        out.print("\n[bold]traceback[/]")
        out.print(job.traceback.rstrip(), markup=False, highlight=False)


def job_table(jobs: list[JobRecord], *, title: str, error_column: bool = False) -> Table:
    """A table of jobs, one per row."""
    table = Table(title=title, title_justify="left")
    for name in ("id", "task", "queue", "priority", "state", "attempts"):
        table.add_column(name, no_wrap=name == "id")
    table.add_column("failed at" if error_column else "updated")
    if error_column:
        table.add_column("error", overflow="fold")
    for j in jobs:
        row = [j.id, j.task, j.queue, j.priority.label, j.state.value, str(j.attempts)]
        if error_column:
            row += [fmt_time(j.failed_at or j.updated_at), clip(j.last_error)]
        else:
            row.append(fmt_time(j.updated_at))
        table.add_row(*row)
    return table


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
) -> None:
    """List jobs, newest first."""
    query = JobQuery(states=parse_states(state), queue=queue, task=task, limit=limit)
    app = resolve_app(app_spec, url)

    async def read(backend: Backend) -> list[JobRecord]:
        return await backend.query(query)

    jobs = run_with_backend(app, read)
    if as_json:
        print_json([j.to_dict() for j in jobs])
    else:
        out.print(job_table(jobs, title=f"{len(jobs)} job(s)"))


@jobs_app.command("cancel")
@handle_errors
def cancel(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job's id.")],
    app_spec: AppOption = None,
    url: UrlOption = None,
) -> None:
    """Cancel a scheduled, ready or running job. Exit 1 if not found or already finished."""
    app = resolve_app(app_spec, url)

    async def act(backend: Backend) -> tuple[bool, JobRecord | None]:
        return await backend.cancel(job_id), await backend.get(job_id)

    done, job = run_with_backend(app, act)
    if job is None:
        raise JobNotFound(f"job {job_id} does not exist (or was pruned after retention)")
    if not done:
        fail(f"job {job_id} is already {job.state.value}; nothing to cancel", EXIT_NOTHING)
    out.print(f"cancelled {job_id}", highlight=False)
