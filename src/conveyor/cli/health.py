"""``conveyor health``: the readiness check as an exit code, for exec probes and scripts.

Exit 0 when the backend answers within ``--timeout`` (and, with ``--worker ID``, that worker
is in the registry, i.e. its heartbeat is fresh); 3 when the backend is unreachable; 1 when
the worker is missing; 2 when ``--worker`` is asked of a store that keeps no worker
registry, or the SQLite file does not exist (a probe never creates a store). One line on
stderr says what failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.backends.capabilities import Admin, Telemetry
from conveyor.cli.common import (
    EXIT_NOTHING,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    AppOption,
    JsonOption,
    UrlOption,
    err,
    handle_errors,
    print_json,
)
from conveyor.cli.loading import resolve_app
from conveyor.errors import ConfigError
from conveyor.redaction import display_url

if TYPE_CHECKING:
    from conveyor.app import Conveyor


async def check(app: Conveyor, worker_id: str | None, timeout: float) -> dict[str, Any]:
    """Ask the backend (and its registry) within ``timeout``; the report as plain data."""
    report: dict[str, Any] = {"url": display_url(app.url), "backend": "ok", "ok": True}
    started = time.monotonic()
    try:
        live = await asyncio.wait_for(_read(app, worker_id is not None), timeout)
    except ConfigError:
        # Not an outage: the store keeps no registry to look the worker up in, or (SQLite)
        # the store file does not exist and a health check must not create it.
        raise
    except TimeoutError:
        live = None
        report["backend"] = f"no answer within {timeout:g}s"
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is the answer
        live = None
        report["backend"] = f"{type(exc).__name__}: {exc}"
    finally:
        await _close(app)
    report["seconds"] = round(time.monotonic() - started, 3)
    if live is None:
        report["ok"] = False
    elif worker_id is not None:
        report["worker"] = "ok" if worker_id in live else "not in the worker registry"
        report["ok"] = worker_id in live
    return report


#: The id `_read` looks up on a store without `Admin`: a round trip that finds nothing.
PROBE_ID = "conveyor-health-probe"


async def _read(app: Conveyor, workers: bool) -> set[str]:
    if workers:
        app.backend.require(Telemetry, purpose="`conveyor health --worker`")
    backend = await app.open()
    if workers:
        return {w.id for w in await backend.telemetry.workers()}
    # Any read proves the store answers: the counters where the store keeps them, else a
    # lookup of one job by id, which every store has.
    if backend.supports(Admin):
        await backend.admin.counters()
    else:
        await backend.get(PROBE_ID)
    return set()


async def _close(app: Conveyor) -> None:
    # Closing a broken backend may fail too; the check's answer is already known.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(app.aclose(), 5.0)


@handle_errors
def health(
    app_spec: AppOption = None,
    url: UrlOption = None,
    worker: Annotated[
        str | None,
        typer.Option(
            "--worker",
            metavar="ID",
            help="Also require this worker's heartbeat to be fresh in the registry.",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the backend before giving up.")
    ] = 5.0,
    as_json: JsonOption = False,
) -> None:
    """Exit 0 if the backend is reachable (and ``--worker ID`` is live); a Kubernetes exec
    probe. Exit 3 when the backend is unreachable, 1 when the worker is not in the registry.
    """
    app = resolve_app(app_spec, url)
    report = asyncio.run(check(app, worker, timeout))
    if as_json:
        print_json(report)
    if report["backend"] != "ok":
        if not as_json:
            err.print(
                f"error: backend unreachable at {report['url']}: {report['backend']}",
                markup=False,
                highlight=False,
            )
        raise typer.Exit(EXIT_UNAVAILABLE)
    if not report["ok"]:
        if not as_json:
            err.print(
                f"error: worker {worker} is not in the worker registry (stopped, or its "
                "heartbeat is older than its TTL); see `conveyor workers`",
                markup=False,
                highlight=False,
            )
        raise typer.Exit(EXIT_NOTHING)
    if not as_json:
        err.print(
            f"ok: backend {report['url']} answered in {report['seconds']:.3f}s"
            f"{f'; worker {worker} is live' if worker else ''}",
            markup=False,
            highlight=False,
        )
    raise typer.Exit(EXIT_OK)
