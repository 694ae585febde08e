"""``conveyor failed list | retry | purge``: the dead-letter store."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.backends.capabilities import Admin
from conveyor.cli.common import (
    EXIT_NOTHING,
    AppOption,
    JsonOption,
    UrlOption,
    confirm_deletion,
    err,
    handle_errors,
    out,
    print_json,
    run_with_backend,
)
from conveyor.cli.listing import JsonLinesOption, Printer, output_mode, stream
from conveyor.cli.loading import resolve_app
from conveyor.cli.typer_app import Cli
from conveyor.errors import ConfigError
from conveyor.job import JobQuery, State

if TYPE_CHECKING:
    from conveyor.backends.base import Backend

failed_app = Cli(
    help="Dead jobs (out of retries, failed with Fail, or poison pills).", no_args_is_help=True
)


@failed_app.command("list")
@handle_errors
def list_failed(
    app_spec: AppOption = None,
    url: UrlOption = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    as_json: JsonOption = False,
    as_jsonl: JsonLinesOption = False,
) -> None:
    """List dead jobs with their last error, newest first (streamed, in little memory)."""
    app = resolve_app(app_spec, url)
    printer = Printer(output_mode(as_json, as_jsonl), "dead job", error_column=True)
    query = JobQuery(states=(State.DEAD,))
    run_with_backend(
        app,
        lambda backend: stream(backend, query, limit, printer),
        needs=[Admin],
        purpose="`conveyor failed list`",
    )


@failed_app.command("retry")
@handle_errors
def retry(
    job_ids: Annotated[
        list[str] | None, typer.Argument(metavar="[ID]...", help="Dead jobs to run again.")
    ] = None,
    all_jobs: Annotated[bool, typer.Option("--all", help="Retry every dead job.")] = False,
    app_spec: AppOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move dead jobs back to ready with fresh attempts. Exit 1 if none was retried.

    ``--json``: ``{"retried": N, "not_retried": M}`` (``M`` counts the ids given that were
    not dead jobs; ``null`` with ``--all``).
    """
    if bool(job_ids) == all_jobs:
        raise ConfigError("give the ids of the dead jobs to retry, or --all (not both)")
    app = resolve_app(app_spec, url)
    wanted = None if all_jobs else list(dict.fromkeys(job_ids or []))

    async def act(backend: Backend) -> int:
        return await backend.admin.retry_dead(wanted)

    count = run_with_backend(app, act, needs=[Admin], purpose="`conveyor failed retry`")
    missed = None if wanted is None else len(wanted) - count
    if as_json:
        print_json({"retried": count, "not_retried": missed})
    else:
        out.print(f"retried {count} job(s)", highlight=False)
    if count == 0:
        if not as_json:
            err.print("no dead job matched", highlight=False)
        raise typer.Exit(EXIT_NOTHING)
    if missed and not as_json:
        err.print(
            f"{missed} id(s) were not dead jobs (missing, not dead, or their "
            "unique key is held by a newer job)",
            highlight=False,
        )


@failed_app.command("purge")
@handle_errors
def purge(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    older_than: Annotated[
        float | None, typer.Option(help="Only jobs that died more than this many s ago.")
    ] = None,
    app_spec: AppOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete dead jobs for good.

    Asks for confirmation on a terminal. Without a terminal (or with CI set) it deletes
    nothing unless --yes is given: it prints how many jobs would go and exits 1.
    ``--json``: ``{"deleted": N}``, or ``{"deleted": 0, "pending": N, "error": ...}``.
    """
    app = resolve_app(app_spec, url)
    # Only the preview count reads this host's clock; the purge hands the store an age.
    before = None if older_than is None else time.time() - older_than

    async def count_dead(backend: Backend) -> int:
        n = 0
        offset = 0
        while True:
            query = JobQuery(states=(State.DEAD,), limit=1000, offset=offset)
            page = await backend.admin.query(query)
            n += sum(1 for j in page if before is None or (j.finished_at or 0.0) < before)
            if len(page) < 1000:
                return n
            offset += 1000

    needs, purpose = [Admin], "`conveyor failed purge`"
    if not yes:
        pending = run_with_backend(app, count_dead, needs=needs, purpose=purpose)
        confirm_deletion(pending, "dead job(s)", as_json)

    async def act(backend: Backend) -> int:
        return await backend.admin.purge([State.DEAD], older_than=older_than)

    deleted = run_with_backend(app, act, needs=needs, purpose=purpose)
    if as_json:
        print_json({"deleted": deleted})
    else:
        out.print(f"purged {deleted} dead job(s)", highlight=False)
