"""``conveyor migrate``: create or upgrade the backend's storage schema."""

from __future__ import annotations

import asyncio

from conveyor.cli.common import (
    AppOption,
    JsonOption,
    UrlOption,
    handle_errors,
    out,
    print_json,
)
from conveyor.cli.loading import resolve_app
from conveyor.redaction import display_url


@handle_errors
def migrate(app_spec: AppOption = None, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Create the backend's tables, or upgrade them to this version of Conveyor.

    Forward-only and safe to run again, or from several machines at once. PostgreSQL
    workers refuse an older schema until this has run; SQLite upgrades its file on open.
    """
    app = resolve_app(app_spec, url, create=True)
    # Not run_with_backend: its plain open() refuses the older schema this is here to fix.
    backend = app.backend

    async def run() -> str:
        try:
            return await backend.migrate()
        finally:
            await app.aclose()

    report = asyncio.run(run())
    if as_json:
        print_json({"url": display_url(app.url), "result": report})
    else:
        out.print(f"{display_url(app.url)}: {report}", highlight=False)
