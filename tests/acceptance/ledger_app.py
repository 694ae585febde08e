"""The app the acceptance tests run in real worker processes.

Every task appends ``start`` and ``end`` records to an append-only JSONL ledger (the file
named by ``LEDGER_PATH``), flushed and fsynced before the task returns, so the record
survives a SIGKILL of the worker right after it. `harness.check` reads the ledger back and
compares it with the job ids the test enqueued (Jepsen's total-queue checker).

Workers load it as ``--app ledger_app:app`` (its directory is put on ``PYTHONPATH``); the
tests enqueue through `build_app` with their own URL. Task names are explicit so both sides
agree whatever the module is called on import.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from conveyor import Conveyor, current_job

LEDGER_ENV = "LEDGER_PATH"

WORK = "ledger.work"
MAIL = "ledger.mail"
CRASH = "ledger.crash"


def record(event: str, **fields: Any) -> None:
    """Append one ledger line for the running job and fsync it."""
    job = current_job()
    line = {
        "event": event,
        "job_id": job.id,
        "task": job.task,
        "pid": os.getpid(),
        "attempt": job.attempt,
        "t": time.time(),
        **fields,
    }
    data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
    # One write() on an O_APPEND descriptor: lines from several processes never interleave.
    fd = os.open(os.environ[LEDGER_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def build_app(url: str | None = None) -> Conveyor:
    """The ledger app on ``url`` (default: ``CONVEYOR_URL``)."""
    app = Conveyor(url)

    @app.task(name=WORK)
    async def work(n: int, seconds: float = 0.0) -> int:
        """Record a start, sleep ``seconds`` (cancellable), record an end."""
        record("start", n=n)
        if seconds:
            await asyncio.sleep(seconds)
        record("end", n=n)
        return n

    @app.task(name=MAIL)
    async def mail(n: int, seconds: float = 0.0) -> int:
        """Another task type (for job-specialized workers): the same records as `work`."""
        record("start", n=n)
        if seconds:
            await asyncio.sleep(seconds)
        record("end", n=n)
        return n

    @app.task(name=CRASH)
    async def crash() -> None:
        """A poison pill: kills its worker process on every run."""
        record("start")
        os._exit(1)

    return app


app = build_app()
