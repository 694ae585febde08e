"""``conveyor queues pause | resume | clear NAME``: the dashboard's queue controls, in a shell.

Pause and resume call the same store capability as the dashboard's buttons
(`Admin.pause_queue`, `Admin.resume_queue`), with the same sentences. ``clear`` deletes the
queue's waiting jobs (scheduled and ready; running ones finish), asking first like
``conveyor failed purge``.

A name that cannot be a queue (empty, with a space at either end or a control character)
is one error line, exit 2, as the dashboard refuses it. A name the store and the app do not
know is still paused (a deploy may hold back a queue before its first job) but gets a
warning naming the queues it knows, since a typo (``mial``) would leave ``mail`` running.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.backends.capabilities import Admin
from conveyor.cli.common import (
    AppOption,
    JsonOption,
    UrlOption,
    confirm_deletion,
    err,
    fail,
    handle_errors,
    out,
    print_json,
    run_with_backend,
)
from conveyor.cli.loading import resolve_app
from conveyor.cli.typer_app import Cli
from conveyor.job import JobQuery, State

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.backends.base import Backend

queues_app = Cli(help="Pause, resume or clear a queue.", no_args_is_help=True)

QueueArgument = Annotated[str, typer.Argument(metavar="NAME", help="The queue, e.g. mail.")]
#: The states `clear` deletes: jobs no worker holds yet.
WAITING = (State.SCHEDULED, State.READY)
#: Jobs cancelled and deleted per round trip while clearing.
PAGE = 500


def checked_name(queue: str) -> str:
    """``queue``, or a one-line error (exit 2) when it cannot be a queue's name."""
    if not queue.strip():
        fail("the queue name is empty: give the name of a queue, e.g. mail")
    if queue != queue.strip():
        fail(f"the queue name {queue!r} starts or ends with a space: give it without")
    if not queue.isprintable():
        fail(f"the queue name {queue!r} holds a control character; queue names are plain text")
    return queue


async def known_queues(backend: Backend, app: Conveyor) -> list[str]:
    """The queues the store holds jobs of, is pausing, or the app's tasks use."""
    stats = await backend.admin.stats()
    paused = await backend.admin.paused_queues()
    tasks = {task.queue for task in app.tasks.values()}
    return sorted({row.queue for row in stats} | set(paused) | tasks)


def warn_unknown(queue: str, known: list[str]) -> None:
    """Say on stderr that ``queue`` is unknown here, naming the known ones."""
    if queue not in known:
        err.print(
            f"warning: no job in the store, paused queue or task of this app uses queue "
            f"{queue!r} (known: {', '.join(known) or 'none'}); check its name",
            highlight=False,
            markup=False,
        )


def _report(as_json: bool, action: str, queue: str, count: int, message: str) -> None:
    if as_json:
        print_json({"action": action, "queue": queue, "count": count, "message": message})
    else:
        out.print(message, highlight=False)


@queues_app.command("pause")
@handle_errors
def pause(
    queue: QueueArgument,
    app_spec: AppOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stop workers from taking the queue's jobs; enqueueing goes on. ``resume`` undoes it."""
    checked_name(queue)
    app = resolve_app(app_spec, url)

    async def act(backend: Backend) -> list[str]:
        known = await known_queues(backend, app)
        await backend.admin.pause_queue(queue)
        return known

    warn_unknown(
        queue, run_with_backend(app, act, needs=[Admin], purpose="`conveyor queues pause`")
    )
    _report(as_json, "pause", queue, 1, f"paused queue {queue}: workers take none of its jobs")


@queues_app.command("resume")
@handle_errors
def resume(
    queue: QueueArgument,
    app_spec: AppOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Let workers take the queue's jobs again."""
    checked_name(queue)
    app = resolve_app(app_spec, url)

    async def act(backend: Backend) -> list[str]:
        known = await known_queues(backend, app)
        await backend.admin.resume_queue(queue)
        return known

    warn_unknown(
        queue, run_with_backend(app, act, needs=[Admin], purpose="`conveyor queues resume`")
    )
    _report(as_json, "resume", queue, 1, f"resumed queue {queue}")


async def count_waiting(backend: Backend, queue: str) -> int:
    """How many of ``queue``'s jobs are scheduled or ready."""
    rows = await backend.admin.stats()
    return sum(row.counts.get(s, 0) for row in rows if row.queue == queue for s in WAITING)


async def clear_waiting(backend: Backend, queue: str) -> int:
    """Delete ``queue``'s scheduled and ready jobs; how many were deleted.

    The store deletes only finished jobs, so each is cancelled, then deleted. The queue is
    paused meanwhile (unless it already was), so no worker takes a job between the listing
    and its cancellation: a job that started running is never cancelled here.
    """
    admin = backend.admin
    was_paused = queue in await admin.paused_queues()
    await admin.pause_queue(queue)
    deleted = 0
    try:
        while True:
            page = await admin.query(JobQuery(states=WAITING, queue=queue, limit=PAGE))
            cancelled = [job.id for job in page if await admin.cancel(job.id)]
            if cancelled:
                deleted += await admin.delete(cancelled)
            if len(page) < PAGE or not cancelled:
                return deleted
    finally:
        if not was_paused:
            await admin.resume_queue(queue)


@queues_app.command("clear")
@handle_errors
def clear(
    queue: QueueArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    app_spec: AppOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete the queue's waiting jobs (scheduled and ready) for good; running ones finish.

    Asks for confirmation on a terminal; without one (or with CI set) it deletes nothing
    unless --yes is given, and exits 1 saying how many jobs would go.
    """
    checked_name(queue)
    app = resolve_app(app_spec, url)
    purpose = "`conveyor queues clear`"
    if not yes:
        pending = run_with_backend(
            app, lambda backend: count_waiting(backend, queue), needs=[Admin], purpose=purpose
        )
        confirm_deletion(pending, f"waiting job(s) of queue {queue}", as_json)
    deleted = run_with_backend(
        app, lambda backend: clear_waiting(backend, queue), needs=[Admin], purpose=purpose
    )
    _report(as_json, "clear", queue, deleted, f"deleted {deleted} waiting job(s) of queue {queue}")
